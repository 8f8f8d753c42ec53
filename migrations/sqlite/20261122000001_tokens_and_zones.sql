-- SQLite dialect of the Postgres schema: same tables, columns and constraints.
-- UUIDs and digests are BLOBs, timestamps are RFC 3339 TEXT, booleans are INTEGER 0/1.
CREATE TABLE zones (
    zone_id     TEXT PRIMARY KEY NOT NULL,
    created_at  TEXT NOT NULL,
    deleted_at  TEXT
);

CREATE TABLE api_tokens (
    key_id        BLOB PRIMARY KEY NOT NULL,
    token_hash    BLOB NOT NULL CHECK (length(token_hash) = 32),
    name          TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    subject_type  TEXT NOT NULL CHECK (subject_type IN ('user', 'agent', 'service')),
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    rate_limit    TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    last_used_at  TEXT
);

CREATE UNIQUE INDEX api_tokens_token_hash ON api_tokens (token_hash);
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE token_zones (
    key_id      BLOB NOT NULL REFERENCES api_tokens (key_id) ON DELETE CASCADE,
    zone_id     TEXT NOT NULL REFERENCES zones (zone_id),
    permission  TEXT NOT NULL CHECK (permission IN ('r', 'w', 'rw')),
    PRIMARY KEY (key_id, zone_id)
);
CREATE INDEX token_zones_zone_id ON token_zones (zone_id);
