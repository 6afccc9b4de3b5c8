-- Training data from psql: a dataset, examples written with plain INSERTs, splits, snapshots and what changed
-- between two, a shuffled epoch.
-- Run it with: memora db psql -f sql/examples/05-training.sql

INSERT INTO memora.dataset (name, task, split_ratios, split_seed)
VALUES ('sms-demo', 'classification', '{"train": 0.8, "test": 0.2}', 2);

-- seq, content_hash, text_hash and split come from a trigger, exactly as for the API's imports.
INSERT INTO memora.example (dataset_id, format, input, label)
SELECT d.id, 'classification', jsonb_build_object('text', m.text), m.label
FROM memora.dataset d,
     (VALUES ('Free entry in a weekly competition, text WIN now', 'spam'),
             ('Ok lar... Joking wif u oni...', 'ham'),
             ('Are we still on for lunch tomorrow?', 'ham'),
             ('URGENT! You have won a 1 week holiday, call now', 'spam'),
             ('ok lar...   joking wif u ONI...', 'ham'),
             ('I will be late, start without me', 'ham')) AS m(text, label)
WHERE d.name = 'sms-demo';

-- Counts by split and label; the two spellings of "ok lar" share a text_hash, and so a split.
SELECT split, label, count(*) AS examples
FROM memora.example
WHERE dataset_id = (SELECT id FROM memora.dataset WHERE name = 'sms-demo') AND deleted_at IS NULL
GROUP BY split, label
ORDER BY split, label;

SELECT count(DISTINCT text_hash) AS distinct_texts, count(*) AS examples
FROM memora.example WHERE dataset_id = (SELECT id FROM memora.dataset WHERE name = 'sms-demo');

-- Freeze the examples as they are now.
SELECT name, examples, split_counts FROM memora.create_snapshot('sms-demo', 'v1', 'before cleanup');

-- Clean up: the second spelling of "ok lar" leaves the live dataset (a tombstone, since v1 holds it), a new message
-- arrives; freeze again, and see what changed from v1 to v2.
UPDATE memora.example SET deleted_at = now()
WHERE dataset_id = (SELECT id FROM memora.dataset WHERE name = 'sms-demo')
  AND input ->> 'text' = 'ok lar...   joking wif u ONI...';
INSERT INTO memora.example (dataset_id, format, input, label)
SELECT id, 'classification', '{"text": "Call me when you get this"}', 'ham' FROM memora.dataset WHERE name = 'sms-demo';
SELECT name, examples FROM memora.create_snapshot('sms-demo', 'v2', 'after cleanup');

SELECT d.change, d.split_before, d.split_after, e.input ->> 'text' AS text
FROM memora.snapshot_diff_v1('sms-demo', 'v1', 'v2') d
JOIN memora.example e ON e.id = d.example_id
ORDER BY d.example_id;

-- A shuffled epoch over the snapshot: position i of the permutation is a seq of the snapshot.
SELECT p.i AS position, e.label, e.input ->> 'text' AS text
FROM memora.snapshot s
CROSS JOIN LATERAL memora.shuffle_positions(0, s.examples, s.examples, 42) AS p
JOIN memora.snapshot_example se ON se.snapshot_id = s.id AND se.seq = p.x
JOIN memora.example e ON (e.dataset_id, e.id) = (se.dataset_id, se.example_id)
WHERE s.name = 'v1' AND s.dataset_id = (SELECT id FROM memora.dataset WHERE name = 'sms-demo')
ORDER BY p.i;
