"""Revision by revision: an old revision means an old schema, whichever way the database got there.

Every revision goes up and down one step at a time with rows in the tables (procrastinate's migration tests do the
same), upgrading from empty and upgrading one revision at a time build the same schema, and a database that the
code before the idempotent layer built upgrades to what a fresh install has.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import psycopg

from memora_migrations.idempotent import FINGERPRINT_KEY
from tests.migrations.helpers import HEAD, REVISIONS, downgrade, dump, fetch, memora_schema, psql, run_sql, upgrade

FIXTURES = Path(__file__).parent / "fixtures"


def check_function_bodies(url: str) -> None:
    """Check every function of Memora's against the schema the database is at now, as CREATE FUNCTION would with
    check_function_bodies on: SQL bodies fully (tables, columns, functions), PL/pgSQL ones as far as it compiles
    them (syntax, declared row types). The migrations create them with the check off."""
    with psycopg.connect(url) as conn:
        conn.execute("SET check_function_bodies = on")
        functions = conn.execute(
            "SELECT p.oid, p.oid::regprocedure::text, l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
            " WHERE p.pronamespace = 'memora'::regnamespace"
        ).fetchall()
        assert functions
        for oid, name, language in functions:
            validator = {"sql": "fmgr_sql_validator", "plpgsql": "plpgsql_validator"}[language]
            try:
                conn.execute(f"SELECT {validator}(%s)", [oid])
            except psycopg.Error as exc:
                raise AssertionError(f"{name} does not fit the schema: {exc}") from exc


def test_upgrade_from_empty_equals_upgrade_one_revision_at_a_time(empty_db_url: str, fresh_db_url: str) -> None:
    for revision in REVISIONS:
        upgrade(empty_db_url, revision)

    assert dump(empty_db_url) == dump(fresh_db_url)  # the whole database: Memora's schema, and `vector` in public


# What each revision's tables get on the way up, in SQL a psql user could write at that revision.
ROWS = {
    "0001": """
        INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions)
        VALUES ('docs', 'hashing', 'm', 3);
        INSERT INTO memora.document (collection_id, external_id, title, content)
        VALUES (1, 'a', 'Foxes', 'The quick brown fox jumps over the lazy dog.'), (1, 'b', 'Dogs', 'Lazy dogs sleep.');
        INSERT INTO memora.chunk
            (collection_id, document_id, ordinal, text, char_start, char_end, content_hash, language)
        SELECT collection_id, id, 0, content, 0, length(content), memora.content_hash(content), 'english'
        FROM memora.document;
        INSERT INTO memora.embedding (collection_id, chunk_id, model, embedding)
        SELECT collection_id, id, 'm', CASE id WHEN 1 THEN '[1,0,0]' ELSE '[0,1,0]' END::vector FROM memora.chunk;
        INSERT INTO memora.dataset (name, task) VALUES ('faq', 'qa');
        INSERT INTO memora.example (dataset_id, input, output, label, content_hash)
        VALUES (1, '{"question": "What jumps?"}', '{"answer": "The fox."}', NULL, '\\x01'),
               (1, '{"text": "Dogs sleep."}', NULL, 'animals', '\\x02');
    """,
    "0003": """
        INSERT INTO memora.example (dataset_id, format, input, output)
        VALUES (1, 'qa', '{"question": "Who sleeps?"}', '{"answer": "The dogs."}');
        SELECT memora.create_snapshot('faq', 'v1');
    """,
    "0010": """
        INSERT INTO memora.eval_run (collection_id, params, summary)
        VALUES (1, '{"modes": ["text"]}', '{"modes": {"text": {"ndcg@10": 1.0}}}');
    """,
}
# Rows that every revision's tables keep.
COUNTS = {"collection": 1, "document": 2, "chunk": 2, "embedding": 2, "dataset": 1}


def check_rows(url: str, revision: str, examples: int) -> None:
    """The rows are there, and the functions of REVISION's files work on them."""
    for table, count in COUNTS.items():
        assert fetch(url, f"SELECT count(*) FROM memora.{table}") == [(count,)], (revision, table)
    assert fetch(url, "SELECT count(*) FROM memora.example") == [(examples,)], revision
    if revision >= "0002":
        # Revision 0002 counted the chunks that were there; the triggers would count the rest.
        chunks = "SELECT count(*), sum(length(tsv)) FROM memora.chunk"
        assert fetch(url, "SELECT chunks, total_length FROM memora.text_stats") == fetch(url, chunks), revision
        hits = fetch(url, "SELECT external_id FROM memora.search_text('docs', 'sleeping dogs', 5)")
        assert hits == [("b",), ("a",)], revision
        assert fetch(url, "SELECT external_id FROM memora.search_vector('docs', '[0,1,0]', 1)") == [("b",)]
    if revision >= "0011":
        # Revision 0011 counted the documents that were there; the triggers count the changes since.
        by_status = "SELECT status, count(*) FROM memora.document GROUP BY 1 ORDER BY 1"
        counted = "SELECT status, sum(n)::bigint FROM memora.document_count GROUP BY 1 HAVING sum(n) <> 0 ORDER BY 1"
        assert fetch(url, counted) == fetch(url, by_status), revision
    if revision >= "0003":
        # Revision 0003's backfill hashed the examples it found as memora.text_hash does.
        hashes = "SELECT seq, format, text_hash = memora.text_hash(format, input, output, label, labels) FROM"
        assert fetch(url, f"{hashes} memora.example ORDER BY seq")[:2] == [
            (0, "custom", True),
            (1, "classification", True),
        ]


def test_every_revision_goes_up_and_down_one_step_with_rows_in_its_tables(empty_db_url: str) -> None:
    schemas = {}
    for revision in REVISIONS:
        upgrade(empty_db_url, revision)
        if revision in ROWS:
            run_sql(empty_db_url, ROWS[revision])
        check_function_bodies(empty_db_url)
        check_rows(empty_db_url, revision, examples=3 if revision >= "0003" else 2)
        schemas[revision] = memora_schema(empty_db_url)
    assert fetch(empty_db_url, "SELECT count(*) FROM memora.snapshot_example") == [(3,)]

    for revision, previous in reversed(list(zip(REVISIONS[1:], REVISIONS[:-1], strict=True))):
        downgrade(empty_db_url, "-1")

        assert fetch(empty_db_url, "SELECT version_num FROM memora.alembic_version") == [(previous,)]
        assert memora_schema(empty_db_url) == schemas[previous], f"{revision} -> {previous}"
        check_function_bodies(empty_db_url)
        check_rows(empty_db_url, previous, examples=3)

        upgrade(empty_db_url, "+1")

        assert memora_schema(empty_db_url) == schemas[revision], f"{previous} -> {revision}"
        check_rows(empty_db_url, revision, examples=3)
        downgrade(empty_db_url, previous)

    downgrade(empty_db_url, "base")
    assert fetch(empty_db_url, "SELECT nspname FROM pg_namespace WHERE nspname = 'memora'") == []


def test_a_database_built_before_the_idempotent_layer_upgrades_to_a_fresh_installs_schema(
    empty_db_url: str, fresh_db_url: str
) -> None:
    """memora-0004.sql.gz: pg_dump --schema=memora of a database that `memora db upgrade` at commit bf8bf67 (head
    0004, functions applied by the revisions) built, with fixtures/memora-0004-data.sql run in it."""
    run_sql(empty_db_url, "CREATE EXTENSION vector")  # Memora created it (memora.meta says so), in public
    psql(empty_db_url, gzip.decompress((FIXTURES / "memora-0004.sql.gz").read_bytes()).decode())
    run_sql(empty_db_url, "CREATE FUNCTION memora.retired() RETURNS int LANGUAGE sql AS 'SELECT 1'")

    upgrade(empty_db_url)
    run_sql(fresh_db_url, (FIXTURES / "memora-0004-data.sql").read_text())

    assert memora_schema(empty_db_url) == memora_schema(fresh_db_url)
    assert fetch(empty_db_url, f"SELECT count(*) FROM memora.meta WHERE key = '{FINGERPRINT_KEY}'") == [(1,)]
    hits = "SELECT external_id FROM memora.search_hybrid('docs', 'lazy dogs', '[0,1,0]', 2)"
    assert fetch(empty_db_url, hits) == fetch(fresh_db_url, hits) == [("b",), ("a",)]
    assert fetch(empty_db_url, "SELECT examples FROM memora.snapshot") == [(2,)]


def test_changed_files_are_applied_without_a_new_revision_and_what_they_dropped_goes(fresh_db_url: str) -> None:
    before = memora_schema(fresh_db_url)
    # What the database looks like to a newer Memora whose files no longer define memora.retired().
    run_sql(
        fresh_db_url,
        "CREATE FUNCTION memora.retired() RETURNS int LANGUAGE sql AS 'SELECT 1';"
        f" UPDATE memora.meta SET value = 'older files' WHERE key = '{FINGERPRINT_KEY}'",
    )

    upgrade(fresh_db_url)

    assert memora_schema(fresh_db_url) == before
    assert fetch(fresh_db_url, "SELECT to_regproc('memora.retired')") == [(None,)]


def test_a_run_that_applies_the_files_makes_each_collection_s_nearest_function_again(fresh_db_url: str) -> None:
    run_sql(
        fresh_db_url,
        "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions)"
        " VALUES ('docs', 'hashing', 'm', 3);"
        "INSERT INTO memora.document (collection_id, external_id, content) VALUES (1, 'a', 'Foxes.');"
        "INSERT INTO memora.chunk (collection_id, document_id, ordinal, text, char_start, char_end, content_hash,"
        " language) SELECT 1, id, 0, content, 0, 6, memora.content_hash(content), 'english' FROM memora.document;"
        "INSERT INTO memora.embedding (collection_id, chunk_id, model, embedding) VALUES (1, 1, 'm', '[1,0,0]');"
        f" UPDATE memora.meta SET value = 'older files' WHERE key = '{FINGERPRINT_KEY}'",
    )
    nearest = "SELECT to_regprocedure('memora.embedding_c1_v1_nearest(vector, integer)')::oid"
    before = fetch(fresh_db_url, nearest)

    upgrade(fresh_db_url)

    after = fetch(fresh_db_url, nearest)
    assert after[0][0] is not None
    assert after != before  # dropped with every function of Memora's, then made again
    hits = "SELECT external_id FROM memora.search_vector('docs', '[1,0.1,0]', 1)"
    assert fetch(fresh_db_url, hits) == [("a",)]


def test_a_downgrade_below_embedding_versions_keeps_each_collection_s_active_version(fresh_db_url: str) -> None:
    run_sql(
        fresh_db_url,
        "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions)"
        " VALUES ('docs', 'hashing', 'm', 3);"
        "INSERT INTO memora.document (collection_id, external_id, content) VALUES (1, 'a', 'Foxes.');"
        "INSERT INTO memora.chunk (collection_id, document_id, ordinal, text, char_start, char_end, content_hash,"
        " language) SELECT 1, id, 0, content, 0, 6, memora.content_hash(content), 'english' FROM memora.document;"
        "INSERT INTO memora.embedding_version (collection_id, number, embedding_provider, embedding_model,"
        " dimensions, metric, storage, hnsw_m, hnsw_ef_construction) VALUES (1, 2, 'hashing', 'm2', 2, 'l2',"
        " 'vector', 16, 64);"
        "INSERT INTO memora.embedding (collection_id, chunk_id, version, model, embedding) VALUES"
        " (1, 1, 1, 'm', '[1,0,0]'), (1, 1, 2, 'm2', '[0,1]');"
        "UPDATE memora.collection SET active_version = 2",
    )

    downgrade(fresh_db_url, "0008")

    # Version 2's vectors are the collection's partition now, with its CHECKs and index under the old names.
    assert fetch(fresh_db_url, "SELECT model, embedding::text FROM memora.embedding") == [("m2", "[0,1]")]
    assert fetch(fresh_db_url, "SELECT embedding_model, dimensions, metric FROM memora.collection") == [("m2", 2, "l2")]
    constraints = "SELECT conname FROM pg_constraint WHERE conrelid = 'memora.embedding_c1'::regclass AND contype = 'c'"
    assert sorted(row[0] for row in fetch(fresh_db_url, constraints)) == [
        "embedding_c1_dimensions",
        "embedding_c1_model",
    ]
    assert fetch(fresh_db_url, "SELECT to_regclass('memora.embedding_c1_hnsw') IS NOT NULL") == [(True,)]
    hits = "SELECT external_id FROM memora.search_vector('docs', '[0.1,1]', 1)"
    assert fetch(fresh_db_url, hits) == [("a",)]

    upgrade(fresh_db_url)

    assert fetch(fresh_db_url, "SELECT number, embedding_model FROM memora.embedding_version") == [(1, "m2")]
    assert fetch(fresh_db_url, hits) == [("a",)]


def test_an_upgrade_with_nothing_to_do_leaves_the_functions_alone(fresh_db_url: str) -> None:
    functions = "SELECT oid, xmin::text FROM pg_proc WHERE pronamespace = 'memora'::regnamespace ORDER BY oid"
    before = fetch(fresh_db_url, functions)

    upgrade(fresh_db_url)

    assert fetch(fresh_db_url, functions) == before


def test_a_function_that_objects_outside_memora_depend_on_is_kept_and_replaced(fresh_db_url: str) -> None:
    before = memora_schema(fresh_db_url)
    run_sql(
        fresh_db_url,
        "CREATE VIEW public.fox_query AS SELECT memora.search_tsquery('english', 'Foxes') AS query;"
        f" UPDATE memora.meta SET value = 'older files' WHERE key = '{FINGERPRINT_KEY}'",
    )

    upgrade(fresh_db_url)

    assert memora_schema(fresh_db_url) == before
    assert fetch(fresh_db_url, "SELECT query::text FROM public.fox_query") == [("'fox'",)]


def test_head_is_the_last_revision() -> None:
    assert REVISIONS[-1] == HEAD
