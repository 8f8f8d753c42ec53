-- SQLite dialect of the Postgres migration: OAuth clients, codes and refresh families, and
-- the kind, client and family of OAuth access tokens.

ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'key' CHECK (kind IN ('key', 'oauth'));
ALTER TABLE api_tokens ADD COLUMN oauth_client_id TEXT;
ALTER TABLE api_tokens ADD COLUMN oauth_family BLOB;
CREATE INDEX api_tokens_oauth_family ON api_tokens (oauth_family) WHERE oauth_family IS NOT NULL;
CREATE INDEX api_tokens_oauth_client ON api_tokens (oauth_client_id) WHERE oauth_client_id IS NOT NULL;

CREATE TABLE oauth_clients (
    client_id      TEXT PRIMARY KEY NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('dcr', 'cimd')),
    client_name    TEXT NOT NULL,
    redirect_uris  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    revoked_at     TEXT
);

CREATE TABLE oauth_codes (
    code_hash       BLOB PRIMARY KEY NOT NULL CHECK (length(code_hash) = 32),
    client_id       TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    username        TEXT NOT NULL REFERENCES local_users (username) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    resource        TEXT NOT NULL,
    scope           TEXT NOT NULL,
    zones           TEXT NOT NULL,
    family_id       BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    used_at         TEXT
);

CREATE TABLE oauth_refresh_tokens (
    token_hash   BLOB PRIMARY KEY NOT NULL CHECK (length(token_hash) = 32),
    family_id    BLOB NOT NULL,
    client_id    TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    username     TEXT NOT NULL REFERENCES local_users (username) ON DELETE CASCADE,
    resource     TEXT NOT NULL,
    scope        TEXT NOT NULL,
    zones        TEXT NOT NULL,
    issued_at    TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT,
    revoked_at   TEXT
);
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens (family_id);
CREATE INDEX oauth_refresh_tokens_client ON oauth_refresh_tokens (client_id);
