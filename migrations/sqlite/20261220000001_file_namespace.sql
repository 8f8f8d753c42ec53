-- SQLite dialect of the Postgres migration: the file namespace, blobs and grep's text.
-- SQLite compares TEXT bytewise (BINARY), as Postgres does with COLLATE "C".
CREATE TABLE fs_entries (
    zone_id     TEXT NOT NULL,
    path        TEXT NOT NULL CHECK (path <> ''),
    parent      TEXT NOT NULL,
    is_dir      BOOLEAN NOT NULL,
    size        INTEGER NOT NULL DEFAULT 0,
    content_id  TEXT,
    version     INTEGER NOT NULL DEFAULT 1,
    modified    TEXT NOT NULL,
    PRIMARY KEY (zone_id, path),
    CHECK (is_dir = (content_id IS NULL))
) WITHOUT ROWID;
CREATE INDEX fs_entries_parent ON fs_entries (zone_id, parent, path);
CREATE INDEX fs_entries_content ON fs_entries (content_id) WHERE content_id IS NOT NULL;

CREATE TABLE fs_blobs (
    content_id  TEXT PRIMARY KEY NOT NULL CHECK (length(content_id) = 64),
    size        INTEGER NOT NULL,
    touched_at  TEXT NOT NULL,
    inline      BLOB,
    -- fs_text holds its body: grep may prefilter it by trigrams; others are always scanned.
    is_text     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX fs_blobs_touched ON fs_blobs (touched_at);

-- FTS5 with the trigram tokenizer: LIKE '%…%' on body uses the index. Its rowid is the
-- blob's rowid in fs_blobs.
CREATE VIRTUAL TABLE fs_text USING fts5 (body, tokenize = 'trigram');

CREATE TABLE fs_imports (
    source       TEXT PRIMARY KEY NOT NULL,
    files        INTEGER NOT NULL,
    finished_at  TEXT NOT NULL
);
