-- Zones: named file namespaces. Deletion is soft so that tokens holding a deleted zone
-- can be refused (and the zone restored) without losing history.
CREATE TABLE zones (
    zone_id     TEXT PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ
);

-- API tokens. Only the HMAC-SHA256 digest of the raw token is stored.
CREATE TABLE api_tokens (
    key_id        UUID PRIMARY KEY,
    token_hash    BYTEA NOT NULL,
    name          TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    subject_type  TEXT NOT NULL CHECK (subject_type IN ('user', 'agent', 'service')),
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    rate_limit    TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    CONSTRAINT api_tokens_hash_len CHECK (octet_length(token_hash) = 32)
);

-- Verification is one indexed lookup by digest.
CREATE UNIQUE INDEX api_tokens_token_hash ON api_tokens (token_hash);
-- A name is unique among tokens that are not revoked; the database enforces it.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE token_zones (
    key_id      UUID NOT NULL REFERENCES api_tokens (key_id) ON DELETE CASCADE,
    zone_id     TEXT NOT NULL REFERENCES zones (zone_id),
    permission  TEXT NOT NULL CHECK (permission IN ('r', 'w', 'rw')),
    PRIMARY KEY (key_id, zone_id)
);
CREATE INDEX token_zones_zone_id ON token_zones (zone_id);
