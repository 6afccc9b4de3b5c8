-- A collection made from psql gets the same vector storage as one made through the REST API.
--   psql "$(memora db url)" -f sql/examples/01-collections.sql

BEGIN;

INSERT INTO memora.collection (name, description, embedding_model, dimensions, metric, storage, language)
VALUES ('handbook', 'Staff handbook', 'all-MiniLM-L6-v2', 384, 'cosine', 'halfvec', 'english')
RETURNING id, name, embedding_model, dimensions, metric, storage;

-- Its vectors live in their own partition, one table per embedding version (the first is version 1), under an HNSW
-- index that matches metric and storage.
SELECT number, embedding_model, dimensions, metric, storage
FROM memora.embedding_version
WHERE collection_id = (SELECT id FROM memora.collection WHERE name = 'handbook');

SELECT indexname, indexdef
FROM pg_indexes
WHERE schemaname = 'memora'
  AND tablename = memora.version_table((SELECT id FROM memora.collection WHERE name = 'handbook'), 1);

-- Documents get their content hash and version from the database.
INSERT INTO memora.document (collection_id, external_id, title, content, metadata)
SELECT id, 'leave-policy', 'Leave policy', 'Staff accrue two days of leave per month.', '{"team": "hr"}'
FROM memora.collection WHERE name = 'handbook'
RETURNING external_id, encode(content_hash, 'hex') AS content_hash, version, status;

UPDATE memora.document SET content = 'Staff accrue two and a half days of leave per month.'
WHERE external_id = 'leave-policy'
RETURNING external_id, version;

-- Tune the index (of the active version, whose settings the collection's columns are): the database rebuilds it.
UPDATE memora.collection SET hnsw_m = 32, hnsw_ef_construction = 128 WHERE name = 'handbook';

SELECT indexdef
FROM pg_indexes
WHERE indexname = memora.version_table((SELECT id FROM memora.collection WHERE name = 'handbook'), 1) || '_hnsw';

ROLLBACK;
