-- Local users, login-token signing keys, login sessions and refresh tokens (SPEC §10), and
-- permissions on database keys.

-- NULL: the key's zones and admin flag decide, exactly as before permissions existed.
-- Otherwise a comma list of READ, WRITE, ADMIN, SUPER.
ALTER TABLE api_tokens ADD COLUMN permissions TEXT;

-- A local user logs in as the subject of the same id (a §9 subject of type user);
-- disabling the subject disables the login.
CREATE TABLE local_users (
    username             TEXT PRIMARY KEY REFERENCES subjects (subject_id) ON DELETE CASCADE,
    -- PHC argon2id, or an imported $2b$ bcrypt hash until its first login re-hashes it.
    password_hash        TEXT NOT NULL,
    permissions          TEXT NOT NULL,
    -- Zone grants like a token's (eng:rw,ops:r); empty for an admin who sees every zone.
    zones                TEXT NOT NULL DEFAULT '',
    created_at           TIMESTAMPTZ NOT NULL,
    password_changed_at  TIMESTAMPTZ NOT NULL
);

-- Ed25519 keys that sign login tokens. The private key is sealed (ChaCha20-Poly1305 under a
-- key derived from NEXUS_API_KEY_SECRET; nonce || ciphertext); never stored in the clear.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL CHECK (alg = 'EdDSA'),
    public_key   BYTEA NOT NULL CHECK (octet_length(public_key) = 32),
    private_key  BYTEA NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    created_at   TIMESTAMPTZ NOT NULL,
    -- Set when retired: the last moment a token it signed can be valid.
    not_after    TIMESTAMPTZ
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';

-- One row per login token: its jti. Logout and refresh-token reuse revoke rows here.
CREATE TABLE login_sessions (
    jti         UUID PRIMARY KEY,
    username    TEXT NOT NULL REFERENCES local_users (username) ON DELETE CASCADE,
    family_id   UUID NOT NULL,
    issued_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX login_sessions_family ON login_sessions (family_id);
CREATE INDEX login_sessions_username ON login_sessions (username);

-- Refresh tokens: only the HMAC digest. A family is one login's chain of rotations;
-- expires_at is the family's absolute end.
CREATE TABLE refresh_tokens (
    token_hash   BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    family_id    UUID NOT NULL,
    parent_hash  BYTEA,
    username     TEXT NOT NULL REFERENCES local_users (username) ON DELETE CASCADE,
    issued_at    TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- A revoked session is announced like a revoked token: identities carry the jti as
-- their key id, so every nexusd drops the login token's cached identity at commit.
CREATE FUNCTION nexus_notify_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nexus_invalidate', json_build_object(
        'kind', 'token',
        'key_id', CASE WHEN TG_OP = 'DELETE' THEN OLD.jti ELSE NEW.jti END)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER nexus_invalidate_session_update AFTER UPDATE ON login_sessions FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION nexus_notify_session();
CREATE TRIGGER nexus_invalidate_session_delete AFTER DELETE ON login_sessions FOR EACH ROW
    EXECUTE FUNCTION nexus_notify_session();

-- A user's permissions or zones changed (or the user was removed): identities of that
-- subject are stale.
CREATE FUNCTION nexus_notify_local_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nexus_invalidate', json_build_object(
        'kind', 'subject',
        'subject_id', CASE WHEN TG_OP = 'DELETE' THEN OLD.username ELSE NEW.username END)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER nexus_invalidate_local_user_update AFTER UPDATE ON local_users FOR EACH ROW
    WHEN ((OLD.permissions, OLD.zones) IS DISTINCT FROM (NEW.permissions, NEW.zones))
    EXECUTE FUNCTION nexus_notify_local_user();
CREATE TRIGGER nexus_invalidate_local_user_delete AFTER DELETE ON local_users FOR EACH ROW
    EXECUTE FUNCTION nexus_notify_local_user();

-- A key's permissions are part of its identity.
CREATE TRIGGER nexus_invalidate_token_permissions AFTER UPDATE ON api_tokens FOR EACH ROW
    WHEN (OLD.permissions IS DISTINCT FROM NEW.permissions)
    EXECUTE FUNCTION nexus_notify_token();
