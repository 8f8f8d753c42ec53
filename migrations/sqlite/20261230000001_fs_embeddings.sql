-- SQLite dialect of the Postgres migration: semantic search's vectors per blob and model.
CREATE TABLE fs_embeddings (
    content_id  TEXT NOT NULL,
    model       TEXT NOT NULL,
    vector      BLOB NOT NULL,
    PRIMARY KEY (content_id, model)
) WITHOUT ROWID;
