-- The file namespace in the database (SPEC §12): one row per directory or file of a zone,
-- the bytes in a content-addressed blob store. Paths are below the zone root, '/'-joined,
-- compared bytewise (COLLATE "C") so a prefix is a range scan.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE fs_entries (
    zone_id     TEXT NOT NULL,
    path        TEXT COLLATE "C" NOT NULL CHECK (path <> ''),
    parent      TEXT COLLATE "C" NOT NULL,
    is_dir      BOOLEAN NOT NULL,
    size        BIGINT NOT NULL DEFAULT 0,
    content_id  TEXT,
    version     BIGINT NOT NULL DEFAULT 1,
    modified    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (zone_id, path),
    CHECK (is_dir = (content_id IS NULL))
);
CREATE INDEX fs_entries_parent ON fs_entries (zone_id, parent, path);
CREATE INDEX fs_entries_content ON fs_entries (content_id) WHERE content_id IS NOT NULL;

-- Every blob a write stored, with when it was last written or reused: the collector takes
-- only unreferenced blobs untouched for a grace period. Small blobs keep their bytes here.
CREATE TABLE fs_blobs (
    content_id  TEXT PRIMARY KEY CHECK (length(content_id) = 64),
    size        BIGINT NOT NULL,
    touched_at  TIMESTAMPTZ NOT NULL,
    inline      BYTEA,
    -- fs_text holds its body: grep may prefilter it by trigrams; others are always scanned.
    is_text     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX fs_blobs_touched ON fs_blobs (touched_at);

-- The text of UTF-8 blobs up to a size, once per blob: grep's trigram prefilter.
CREATE TABLE fs_text (
    content_id  TEXT PRIMARY KEY REFERENCES fs_blobs (content_id) ON DELETE CASCADE,
    body        TEXT NOT NULL
);
CREATE INDEX fs_text_trgm ON fs_text USING gin (body gin_trgm_ops);

-- One row per completed import of a data directory's files (the first start after an
-- upgrade), so it runs once.
CREATE TABLE fs_imports (
    source       TEXT PRIMARY KEY,
    files        BIGINT NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL
);
