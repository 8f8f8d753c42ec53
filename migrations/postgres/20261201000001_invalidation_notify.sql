-- Every change that can make a cached identity stale is announced, in the transaction that
-- makes it, on channel nexus_invalidate: whichever process writes (nexusd, the CLI, an
-- operator's psql), every nexusd listening learns of it at commit. The payload is the
-- invalidation as nexusd reads it: {"kind":"token","key_id":…} or {"kind":"zone","zone_id":…}.

CREATE FUNCTION nexus_notify_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nexus_invalidate', json_build_object(
        'kind', 'token',
        'key_id', CASE WHEN TG_OP = 'DELETE' THEN OLD.key_id ELSE NEW.key_id END)::text);
    RETURN NULL;
END $$;

CREATE FUNCTION nexus_notify_zone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nexus_invalidate', json_build_object(
        'kind', 'zone',
        'zone_id', CASE WHEN TG_OP = 'DELETE' THEN OLD.zone_id ELSE NEW.zone_id END)::text);
    RETURN NULL;
END $$;

-- Not on last_used_at (written in batches all the time) nor token_hash (re-hashing on
-- secret rotation changes no identity).
CREATE TRIGGER nexus_invalidate_token_update AFTER UPDATE ON api_tokens FOR EACH ROW
    WHEN ((OLD.revoked_at, OLD.expires_at, OLD.is_admin, OLD.rate_limit, OLD.user_id,
           OLD.subject_type, OLD.name)
          IS DISTINCT FROM
          (NEW.revoked_at, NEW.expires_at, NEW.is_admin, NEW.rate_limit, NEW.user_id,
           NEW.subject_type, NEW.name))
    EXECUTE FUNCTION nexus_notify_token();
CREATE TRIGGER nexus_invalidate_token_delete AFTER DELETE ON api_tokens FOR EACH ROW
    EXECUTE FUNCTION nexus_notify_token();
CREATE TRIGGER nexus_invalidate_grants AFTER INSERT OR UPDATE OR DELETE ON token_zones
    FOR EACH ROW EXECUTE FUNCTION nexus_notify_token();
CREATE TRIGGER nexus_invalidate_zones AFTER INSERT OR UPDATE OR DELETE ON zones
    FOR EACH ROW EXECUTE FUNCTION nexus_notify_zone();
