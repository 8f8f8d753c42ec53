-- The hub as the OAuth authorization server of MCP clients (SPEC §11): registered clients,
-- authorization codes and refresh-token families. Codes and refresh tokens are stored as
-- HMAC digests only. Access tokens are ordinary rows of api_tokens, marked kind 'oauth'
-- with their client and family, so revocation, the identity cache and its announcements
-- apply to them unchanged.

ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'key' CHECK (kind IN ('key', 'oauth'));
ALTER TABLE api_tokens ADD COLUMN oauth_client_id TEXT;
ALTER TABLE api_tokens ADD COLUMN oauth_family UUID;
CREATE INDEX api_tokens_oauth_family ON api_tokens (oauth_family) WHERE oauth_family IS NOT NULL;
CREATE INDEX api_tokens_oauth_client ON api_tokens (oauth_client_id) WHERE oauth_client_id IS NOT NULL;

-- A client registered by RFC 7591 (client_id random) or known by its Client ID Metadata
-- Document (client_id = the document's https URL). Revoked clients stay, so that a revoked
-- metadata document is not simply fetched again.
CREATE TABLE oauth_clients (
    client_id      TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('dcr', 'cimd')),
    client_name    TEXT NOT NULL,
    -- JSON array of the registered redirect URIs.
    redirect_uris  TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ
);

-- One consent's authorization code: single use, short-lived.
CREATE TABLE oauth_codes (
    code_hash       BYTEA PRIMARY KEY CHECK (octet_length(code_hash) = 32),
    client_id       TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    username        TEXT NOT NULL REFERENCES local_users (username) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    resource        TEXT NOT NULL,
    -- What was consented: scopes (space-separated) and zones (eng:rw,ops:r; empty = all,
    -- for an admin grant).
    scope           TEXT NOT NULL,
    zones           TEXT NOT NULL,
    family_id       UUID NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ
);

-- Refresh tokens: a family is one consent's chain of rotations; expires_at is the
-- family's absolute end. A used token presented again revokes the family.
CREATE TABLE oauth_refresh_tokens (
    token_hash   BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    family_id    UUID NOT NULL,
    client_id    TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    username     TEXT NOT NULL REFERENCES local_users (username) ON DELETE CASCADE,
    resource     TEXT NOT NULL,
    scope        TEXT NOT NULL,
    zones        TEXT NOT NULL,
    issued_at    TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens (family_id);
CREATE INDEX oauth_refresh_tokens_client ON oauth_refresh_tokens (client_id);
