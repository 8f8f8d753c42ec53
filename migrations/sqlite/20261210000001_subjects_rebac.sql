-- SQLite dialect of the Postgres migration: subjects, relationship tuples, the ReBAC
-- revision, zone access modes, and two more kinds in the change log.

CREATE TABLE subjects (
    subject_id    TEXT PRIMARY KEY NOT NULL
        CHECK (length(subject_id) BETWEEN 1 AND 128 AND subject_id GLOB '[a-z0-9]*'
               AND subject_id NOT GLOB '*[^a-z0-9._@-]*'),
    subject_type  TEXT NOT NULL CHECK (subject_type IN ('user', 'agent', 'service')),
    display_name  TEXT NOT NULL DEFAULT '',
    tenant_id     TEXT,
    owner_id      TEXT REFERENCES subjects (subject_id) ON DELETE SET NULL,
    created_at    TEXT NOT NULL,
    disabled_at   TEXT,
    CONSTRAINT subjects_owner_not_self CHECK (owner_id IS NULL OR owner_id <> subject_id)
);
CREATE INDEX subjects_owner_id ON subjects (owner_id);
CREATE INDEX api_tokens_user_id ON api_tokens (user_id);

CREATE TABLE rebac_tuples (
    tuple_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    zone_id           TEXT REFERENCES zones (zone_id),
    object_type       TEXT NOT NULL CHECK (object_type IN ('group', 'zone', 'file', 'namespace')),
    object_id         TEXT NOT NULL,
    relation          TEXT NOT NULL
        CHECK (relation IN ('member', 'reader', 'writer', 'admin', 'can_read', 'can_write')),
    subject_type      TEXT NOT NULL CHECK (subject_type IN ('user', 'agent', 'service', 'token', 'group')),
    subject_id        TEXT NOT NULL,
    subject_relation  TEXT NOT NULL DEFAULT '',
    expires_at        TEXT,
    created_at        TEXT NOT NULL,
    created_by        TEXT,
    CONSTRAINT rebac_tuples_userset CHECK ((subject_type = 'group') = (subject_relation = 'member')),
    CONSTRAINT rebac_tuples_zone_scope CHECK ((object_type IN ('zone', 'file')) = (zone_id IS NOT NULL)),
    CONSTRAINT rebac_tuples_unique
        UNIQUE (object_type, object_id, relation, subject_type, subject_id, subject_relation)
);
CREATE INDEX rebac_tuples_subject ON rebac_tuples (subject_type, subject_id, relation);
CREATE INDEX rebac_tuples_zone ON rebac_tuples (zone_id);

CREATE TABLE rebac_revision (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    rev  INTEGER NOT NULL
);
INSERT INTO rebac_revision (id, rev) VALUES (1, 0);

ALTER TABLE zones ADD COLUMN access_mode TEXT NOT NULL DEFAULT 'open'
    CHECK (access_mode IN ('open', 'rebac'));

-- The change log's kind CHECK cannot be altered in place: rebuild it (and the triggers that
-- write it, which SQLite would otherwise leave pointing at the dropped table), keeping
-- every row and the sequence so running readers see no hole.
DROP TRIGGER nexus_invalidate_token_update;
DROP TRIGGER nexus_invalidate_token_delete;
DROP TRIGGER nexus_invalidate_grants_insert;
DROP TRIGGER nexus_invalidate_grants_update;
DROP TRIGGER nexus_invalidate_grants_delete;
DROP TRIGGER nexus_invalidate_zones_insert;
DROP TRIGGER nexus_invalidate_zones_update;
DROP TRIGGER nexus_invalidate_zones_delete;

CREATE TABLE nexus_invalidations_new (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('token', 'zone', 'rebac', 'subject')),
    key_id      BLOB,
    zone_id     TEXT,
    subject_id  TEXT
);
INSERT INTO nexus_invalidations_new (seq, kind, key_id, zone_id)
    SELECT seq, kind, key_id, zone_id FROM nexus_invalidations;
-- AUTOINCREMENT must never hand out a sequence number a reader has already seen.
INSERT INTO nexus_invalidations_new (seq, kind)
    SELECT seq, 'rebac' FROM sqlite_sequence
    WHERE name = 'nexus_invalidations'
      AND seq > (SELECT COALESCE(MAX(seq), 0) FROM nexus_invalidations);
DROP TABLE nexus_invalidations;
ALTER TABLE nexus_invalidations_new RENAME TO nexus_invalidations;

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

-- Tuples: every writer bumps the revision row once per transaction, so the change is
-- announced there (SQLite has no statement triggers; a row per tuple would log a million
-- rows for a million-tuple import). A writer bypassing the store must bump it too.
CREATE TRIGGER nexus_invalidate_rebac_revision AFTER UPDATE ON rebac_revision FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind) VALUES ('rebac');
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_subjects_insert AFTER INSERT ON subjects FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, subject_id) VALUES ('subject', NEW.subject_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_subjects_update AFTER UPDATE ON subjects FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, subject_id) VALUES ('subject', NEW.subject_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;

CREATE TRIGGER nexus_invalidate_subjects_delete AFTER DELETE ON subjects FOR EACH ROW
BEGIN
    INSERT INTO nexus_invalidations (kind, subject_id) VALUES ('subject', OLD.subject_id);
    DELETE FROM nexus_invalidations WHERE seq <= (SELECT max(seq) FROM nexus_invalidations) - 1000;
END;
