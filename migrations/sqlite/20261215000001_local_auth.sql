-- SQLite dialect of the Postgres migration: local users, signing keys, login sessions,
-- refresh tokens, and permissions on database keys.

ALTER TABLE api_tokens ADD COLUMN permissions TEXT;

CREATE TABLE local_users (
    username             TEXT PRIMARY KEY NOT NULL REFERENCES subjects (subject_id) ON DELETE CASCADE,
    password_hash        TEXT NOT NULL,
    permissions          TEXT NOT NULL,
    zones                TEXT NOT NULL DEFAULT '',
    created_at           TEXT NOT NULL,
    password_changed_at  TEXT NOT NULL
);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,
    alg          TEXT NOT NULL CHECK (alg = 'EdDSA'),
    public_key   BLOB NOT NULL CHECK (length(public_key) = 32),
    private_key  BLOB NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    created_at   TEXT NOT NULL,
    not_after    TEXT
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';

CREATE TABLE login_sessions (
    jti         BLOB PRIMARY KEY NOT NULL,
    username    TEXT NOT NULL REFERENCES local_users (username) ON DELETE CASCADE,
    family_id   BLOB NOT NULL,
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX login_sessions_family ON login_sessions (family_id);
CREATE INDEX login_sessions_username ON login_sessions (username);

CREATE TABLE refresh_tokens (
    token_hash   BLOB PRIMARY KEY NOT NULL CHECK (length(token_hash) = 32),
    family_id    BLOB NOT NULL,
    parent_hash  BLOB,
    username     TEXT NOT NULL REFERENCES local_users (username) ON DELETE CASCADE,
    issued_at    TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT,
    revoked_at   TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TRIGGER nexus_invalidate_session_update AFTER UPDATE ON login_sessions FOR EACH ROW
    WHEN OLD.revoked_at IS NOT NEW.revoked_at
BEGIN
    INSERT INTO nexus_invalidations (kind, key_id) VALUES ('token', NEW.jti);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_session_delete AFTER DELETE ON login_sessions FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, key_id) VALUES ('token', OLD.jti);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_local_user_update AFTER UPDATE ON local_users FOR EACH ROW
    WHEN OLD.permissions IS NOT NEW.permissions OR OLD.zones IS NOT NEW.zones
BEGIN
    INSERT INTO nexus_invalidations (kind, subject_id) VALUES ('subject', NEW.username);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_local_user_delete AFTER DELETE ON local_users FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, subject_id) VALUES ('subject', OLD.username);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_token_permissions AFTER UPDATE ON api_tokens FOR EACH ROW
    WHEN OLD.permissions IS NOT NEW.permissions
BEGIN
    INSERT INTO nexus_invalidations (kind, key_id) VALUES ('token', NEW.key_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;
