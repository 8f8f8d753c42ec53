-- The blobs grep's trigram index does not hold (binary, too large, or not indexed yet):
-- always candidates of a grep, found without reading every blob row.
CREATE INDEX fs_blobs_unindexed ON fs_blobs (content_id) WHERE is_text = FALSE;
