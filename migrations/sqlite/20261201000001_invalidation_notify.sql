-- Every change that can make a cached identity stale is logged, in the transaction that
-- makes it, whichever process writes (nexusd, the CLI, sqlite3 by hand). nexusd notices a
-- commit through PRAGMA data_version and applies the rows it has not seen. Only the last
-- 1000 rows are kept: a reader that fell further behind drops its whole cache.
CREATE TABLE nexus_invalidations (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL CHECK (kind IN ('token', 'zone')),
    key_id   BLOB,
    zone_id  TEXT
);

-- Not on last_used_at (written in batches all the time) nor token_hash (re-hashing on
-- secret rotation changes no identity).
CREATE TRIGGER nexus_invalidate_token_update AFTER UPDATE ON api_tokens FOR EACH ROW
    WHEN OLD.revoked_at IS NOT NEW.revoked_at OR OLD.expires_at IS NOT NEW.expires_at
      OR OLD.is_admin IS NOT NEW.is_admin OR OLD.rate_limit IS NOT NEW.rate_limit
      OR OLD.user_id IS NOT NEW.user_id OR OLD.subject_type IS NOT NEW.subject_type
      OR OLD.name IS NOT NEW.name
BEGIN
    INSERT INTO nexus_invalidations (kind, key_id) VALUES ('token', NEW.key_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_token_delete AFTER DELETE ON api_tokens FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, key_id) VALUES ('token', OLD.key_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_grants_insert AFTER INSERT ON token_zones FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, key_id) VALUES ('token', NEW.key_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_grants_update AFTER UPDATE ON token_zones FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, key_id) VALUES ('token', NEW.key_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_grants_delete AFTER DELETE ON token_zones FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, key_id) VALUES ('token', OLD.key_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_zones_insert AFTER INSERT ON zones FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, zone_id) VALUES ('zone', NEW.zone_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_zones_update AFTER UPDATE ON zones FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, zone_id) VALUES ('zone', NEW.zone_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_zones_delete AFTER DELETE ON zones FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, zone_id) VALUES ('zone', OLD.zone_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;
