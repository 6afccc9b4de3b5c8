-- A small collection to search (sql/examples/04-search.sql). The hashing embedder needs no model, so this runs
-- anywhere; a real collection uses the default local model or OpenAI.
--   psql "$(memora db url)" -f sql/examples/03-search-setup.sql
--   memora worker --until-empty        (or have `memora serve` running)

INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions)
VALUES ('search-demo', 'hashing', 'hashing', 64)
ON CONFLICT (name) DO NOTHING;

INSERT INTO memora.document (collection_id, external_id, title, content, metadata)
SELECT c.id, d.external_id, d.title, d.content, d.metadata::jsonb
FROM memora.collection c,
     (VALUES
        ('reset-password', 'Resetting your password',
         'Open Settings, choose Security and press Reset password. We email you a link that works for one hour.',
         '{"team": "support", "year": 2025, "tags": ["account", "security"]}'),
        ('billing-cycle', 'Billing cycle',
         'Invoices are issued on the first day of each month and paid by card or bank transfer.',
         '{"team": "finance", "year": 2024, "tags": ["billing"]}'),
        ('lost-device', 'Lost phone or laptop',
         'Report a lost device to security at once: we lock the account and revoke its sessions.',
         '{"team": "security", "year": 2026, "tags": ["account", "security"]}')
     ) AS d (external_id, title, content, metadata)
WHERE c.name = 'search-demo'
ON CONFLICT (collection_id, external_id) DO UPDATE SET content = EXCLUDED.content, metadata = EXCLUDED.metadata;
