-- Embedding vectors of blobs' text for semantic search, one per blob and model. A content
-- id names immutable bytes, so an entry never goes stale; the collector deletes it with
-- its blob. The vector is little-endian f32s.
CREATE TABLE fs_embeddings (
    content_id  TEXT NOT NULL,
    model       TEXT NOT NULL,
    vector      BYTEA NOT NULL,
    PRIMARY KEY (content_id, model)
);
