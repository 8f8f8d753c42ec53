-- Sign-in through an upstream OpenID provider (see the Postgres migration of the same
-- name): `provider` on codes and refresh tokens, and the foreign key to local_users
-- replaced by a trigger for local users alone. SQLite cannot drop a foreign key, so both
-- tables are rebuilt; nothing references them.

CREATE TABLE oauth_codes_new (
    code_hash       BLOB PRIMARY KEY NOT NULL CHECK (length(code_hash) = 32),
    client_id       TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    username        TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    resource        TEXT NOT NULL,
    scope           TEXT NOT NULL,
    zones           TEXT NOT NULL,
    family_id       BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    used_at         TEXT,
    provider        TEXT
);
INSERT INTO oauth_codes_new (code_hash, client_id, username, redirect_uri, code_challenge,
    resource, scope, zones, family_id, created_at, expires_at, used_at)
    SELECT code_hash, client_id, username, redirect_uri, code_challenge, resource, scope,
        zones, family_id, created_at, expires_at, used_at FROM oauth_codes;
DROP TABLE oauth_codes;
ALTER TABLE oauth_codes_new RENAME TO oauth_codes;

CREATE TABLE oauth_refresh_tokens_new (
    token_hash   BLOB PRIMARY KEY NOT NULL CHECK (length(token_hash) = 32),
    family_id    BLOB NOT NULL,
    client_id    TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    username     TEXT NOT NULL,
    resource     TEXT NOT NULL,
    scope        TEXT NOT NULL,
    zones        TEXT NOT NULL,
    issued_at    TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT,
    revoked_at   TEXT,
    provider     TEXT
);
INSERT INTO oauth_refresh_tokens_new (token_hash, family_id, client_id, username, resource,
    scope, zones, issued_at, expires_at, used_at, revoked_at)
    SELECT token_hash, family_id, client_id, username, resource, scope, zones, issued_at,
        expires_at, used_at, revoked_at FROM oauth_refresh_tokens;
DROP TABLE oauth_refresh_tokens;
ALTER TABLE oauth_refresh_tokens_new RENAME TO oauth_refresh_tokens;
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens (family_id);
CREATE INDEX oauth_refresh_tokens_client ON oauth_refresh_tokens (client_id);
CREATE INDEX oauth_codes_username ON oauth_codes (username);
CREATE INDEX oauth_refresh_tokens_username ON oauth_refresh_tokens (username);

CREATE TRIGGER nexus_oauth_forget_local_user AFTER DELETE ON local_users FOR EACH ROW
BEGIN
    DELETE FROM oauth_codes WHERE username = OLD.username AND provider IS NULL;
    DELETE FROM oauth_refresh_tokens WHERE username = OLD.username AND provider IS NULL;
END;
