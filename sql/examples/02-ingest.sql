-- Documents inserted or updated from psql are chunked and embedded by the worker, with no other step:
-- a trigger queues them (status 'pending') and wakes the workers with NOTIFY.
--   psql "$(memora db url)" -f sql/examples/02-ingest.sql      (with `memora serve` or `memora worker` running)

INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions, chunking)
VALUES ('sql-demo', 'hashing', 'hashing', 64, '{"strategy": "markdown", "size": 256, "overlap": 0}')
ON CONFLICT (name) DO NOTHING;

INSERT INTO memora.document (collection_id, external_id, title, content, content_type, metadata)
SELECT id, 'onboarding', 'Onboarding',
       E'# First day\n\nCollect your badge at the front desk.\n\n# First week\n\nMeet your team and set up your laptop.',
       'text/markdown', '{"team": "people"}'
FROM memora.collection WHERE name = 'sql-demo'
ON CONFLICT (collection_id, external_id) DO UPDATE SET content = EXCLUDED.content
RETURNING external_id, status, version;

-- Later: the document's chunks, with the Markdown heading path of each.
--   SELECT ordinal, metadata->'headings' AS headings, text
--   FROM memora.chunk c JOIN memora.document d ON d.id = c.document_id
--   WHERE d.external_id = 'onboarding' ORDER BY ordinal;

-- Queue a document again by hand (e.g. after fixing what made it fail):
--   UPDATE memora.document SET status = 'pending' WHERE external_id = 'onboarding';
