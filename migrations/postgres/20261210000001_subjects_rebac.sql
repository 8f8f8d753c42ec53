-- Subjects (users, agents, services), relationship tuples, the ReBAC revision, and zone
-- access modes. Existing tokens are untouched: a token is bound to a subject only when its
-- user_id names one.

CREATE TABLE subjects (
    subject_id    TEXT PRIMARY KEY CHECK (subject_id ~ '^[a-z0-9][a-z0-9._@-]{0,127}$'),
    subject_type  TEXT NOT NULL CHECK (subject_type IN ('user', 'agent', 'service')),
    display_name  TEXT NOT NULL DEFAULT '',
    tenant_id     TEXT,
    -- An agent's owning user; the control plane checks it names a user.
    owner_id      TEXT REFERENCES subjects (subject_id) ON DELETE SET NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    disabled_at   TIMESTAMPTZ,
    CONSTRAINT subjects_owner_not_self CHECK (owner_id IS NULL OR owner_id <> subject_id)
);
CREATE INDEX subjects_owner_id ON subjects (owner_id);
CREATE INDEX api_tokens_user_id ON api_tokens (user_id);

-- One row per relationship: <object_type>:<object_id> #<relation> @ <subject>.
-- zone_id is the zone a zone or file object lives in (NULL for groups and the namespace);
-- file object ids are hub-wide paths (/zone/<z>/<path>).
CREATE TABLE rebac_tuples (
    tuple_id          BIGSERIAL PRIMARY KEY,
    zone_id           TEXT REFERENCES zones (zone_id),
    object_type       TEXT NOT NULL CHECK (object_type IN ('group', 'zone', 'file', 'namespace')),
    object_id         TEXT NOT NULL,
    relation          TEXT NOT NULL
        CHECK (relation IN ('member', 'reader', 'writer', 'admin', 'can_read', 'can_write')),
    subject_type      TEXT NOT NULL CHECK (subject_type IN ('user', 'agent', 'service', 'token', 'group')),
    subject_id        TEXT NOT NULL,
    -- 'member' exactly for group#member usersets.
    subject_relation  TEXT NOT NULL DEFAULT '',
    expires_at        TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    -- Who wrote it: "key:<key_id>" or "local" (the CLI on the database). Never a token.
    created_by        TEXT,
    CONSTRAINT rebac_tuples_userset CHECK ((subject_type = 'group') = (subject_relation = 'member')),
    CONSTRAINT rebac_tuples_zone_scope CHECK ((object_type IN ('zone', 'file')) = (zone_id IS NOT NULL)),
    CONSTRAINT rebac_tuples_unique
        UNIQUE (object_type, object_id, relation, subject_type, subject_id, subject_relation)
);
-- Group closure and list-tuples --subject.
CREATE INDEX rebac_tuples_subject ON rebac_tuples (subject_type, subject_id, relation);
CREATE INDEX rebac_tuples_zone ON rebac_tuples (zone_id);

-- Bumped by every subject or tuple write, in the same transaction.
CREATE TABLE rebac_revision (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    rev  BIGINT NOT NULL
);
INSERT INTO rebac_revision (id, rev) VALUES (1, 0);

ALTER TABLE zones ADD COLUMN access_mode TEXT NOT NULL DEFAULT 'open'
    CHECK (access_mode IN ('open', 'rebac'));

-- Announced like token changes: {"kind":"rebac"} (compiled grants are stale everywhere)
-- and {"kind":"subject","subject_id":…} (identities bound to it are stale). Postgres folds
-- identical notifications of one transaction into one.
CREATE FUNCTION nexus_notify_rebac() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nexus_invalidate', json_build_object('kind', 'rebac')::text);
    RETURN NULL;
END $$;

CREATE FUNCTION nexus_notify_subject() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nexus_invalidate', json_build_object(
        'kind', 'subject',
        'subject_id', CASE WHEN TG_OP = 'DELETE' THEN OLD.subject_id ELSE NEW.subject_id END)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER nexus_invalidate_rebac AFTER INSERT OR UPDATE OR DELETE ON rebac_tuples
    FOR EACH STATEMENT EXECUTE FUNCTION nexus_notify_rebac();
CREATE TRIGGER nexus_invalidate_subjects AFTER INSERT OR UPDATE OR DELETE ON subjects
    FOR EACH ROW EXECUTE FUNCTION nexus_notify_subject();
