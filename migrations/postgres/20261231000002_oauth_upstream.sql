-- Sign-in through an upstream OpenID provider on the hub's OAuth pages (SPEC §11): a code
-- or refresh family may now belong to an OIDC subject, who has no local_users row. The
-- column `provider` names the configured OIDC provider (NULL: a local user, as before).
-- The foreign key to local_users gives way to a trigger that keeps its meaning for local
-- users alone: deleting a local user still deletes its pending codes and refresh tokens,
-- so a user re-created under the same name never inherits an old family.

ALTER TABLE oauth_codes DROP CONSTRAINT oauth_codes_username_fkey;
ALTER TABLE oauth_codes ADD COLUMN provider TEXT;
ALTER TABLE oauth_refresh_tokens DROP CONSTRAINT oauth_refresh_tokens_username_fkey;
ALTER TABLE oauth_refresh_tokens ADD COLUMN provider TEXT;
CREATE INDEX oauth_codes_username ON oauth_codes (username);
CREATE INDEX oauth_refresh_tokens_username ON oauth_refresh_tokens (username);

CREATE FUNCTION nexus_oauth_forget_local_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM oauth_codes WHERE username = OLD.username AND provider IS NULL;
    DELETE FROM oauth_refresh_tokens WHERE username = OLD.username AND provider IS NULL;
    RETURN OLD;
END $$;
CREATE TRIGGER nexus_oauth_forget_local_user AFTER DELETE ON local_users FOR EACH ROW
    EXECUTE FUNCTION nexus_oauth_forget_local_user();
