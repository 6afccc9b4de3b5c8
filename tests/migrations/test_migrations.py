"""Memora's migrations in other people's databases: they touch only Memora's schema and undo cleanly."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import memora_migrations
from app.db.models import Base
from memora_migrations.filters import memora_objects
from tests.conftest import create_database, drop_database, sqlalchemy_engine
from tests.migrations.helpers import HEAD, downgrade, dump, fetch, memora_schema, psql, run_sql, upgrade


def test_upgrade_on_an_empty_database(empty_db_url: str) -> None:
    upgrade(empty_db_url)

    tables = {row[0] for row in fetch(empty_db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'memora'")}
    assert {"collection", "document", "chunk", "embedding", "dataset", "example", "alembic_version"} <= tables
    assert fetch(empty_db_url, "SELECT version_num FROM memora.alembic_version") == [(HEAD,)]
    assert fetch(empty_db_url, "SELECT extname FROM pg_extension WHERE extname = 'vector'") == [("vector",)]
    assert memora_migrations.current_revision(empty_db_url) == HEAD


EXISTING_APP = """
CREATE TABLE public.customer (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO public.customer (name) VALUES ('Ada'), ('Grace');
CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO public.alembic_version VALUES ('their_rev_42');
CREATE FUNCTION public.greet(name text) RETURNS text LANGUAGE sql AS $$ SELECT 'hi ' || name $$;
"""


def test_upgrade_and_downgrade_leave_an_existing_application_untouched(empty_db_url: str) -> None:
    run_sql(empty_db_url, EXISTING_APP)
    before = dump(empty_db_url)
    public_before = dump(empty_db_url, "--schema=public")

    upgrade(empty_db_url)

    assert dump(empty_db_url, "--schema=public") == public_before
    assert fetch(empty_db_url, "SELECT version_num FROM public.alembic_version") == [("their_rev_42",)]
    assert fetch(empty_db_url, "SELECT name FROM public.customer ORDER BY id") == [("Ada",), ("Grace",)]

    downgrade(empty_db_url, "base")

    assert dump(empty_db_url) == before
    assert fetch(empty_db_url, "SELECT version_num FROM public.alembic_version") == [("their_rev_42",)]


def test_downgrade_to_base_removes_every_object_of_ours(empty_db_url: str) -> None:
    before = dump(empty_db_url)
    upgrade(empty_db_url)
    run_sql(empty_db_url, "INSERT INTO memora.collection (name, embedding_model, dimensions) VALUES ('docs', 'm', 3)")

    downgrade(empty_db_url, "base")

    assert dump(empty_db_url) == before
    assert fetch(empty_db_url, "SELECT nspname FROM pg_namespace WHERE nspname = 'memora'") == []
    assert fetch(empty_db_url, "SELECT extname FROM pg_extension WHERE extname = 'vector'") == []


def test_downgrade_keeps_a_vector_extension_that_was_there_before(empty_db_url: str) -> None:
    run_sql(empty_db_url, "CREATE EXTENSION vector; CREATE TABLE public.items (embedding vector(3))")
    before = dump(empty_db_url)

    upgrade(empty_db_url)
    downgrade(empty_db_url, "base")

    assert dump(empty_db_url) == before


def test_a_vector_extension_installed_in_a_schema_of_the_hosts_choice(empty_db_url: str) -> None:
    """docs/migrations.md: create `vector` where you want it, on the search path, before Memora's first migration."""
    database = empty_db_url.rsplit("/", 1)[1]
    run_sql(
        empty_db_url,
        f"CREATE SCHEMA extensions; CREATE EXTENSION vector SCHEMA extensions;"
        f' ALTER DATABASE "{database}" SET search_path = "$user", public, extensions',
    )
    public_before = dump(empty_db_url, "--schema=public")

    upgrade(empty_db_url)
    run_sql(
        empty_db_url,
        """
        INSERT INTO memora.collection (name, embedding_model, dimensions) VALUES ('docs', 'm', 3);
        INSERT INTO memora.document (collection_id, external_id, content) VALUES (1, 'a', 'the fox');
        INSERT INTO memora.chunk
            (collection_id, document_id, ordinal, text, char_start, char_end, content_hash, language)
        VALUES (1, 1, 0, 'the fox', 0, 7, '\\x00', 'english');
        INSERT INTO memora.embedding (collection_id, chunk_id, model, embedding) VALUES (1, 1, 'm', '[1,0,0]');
        """,
    )

    hits = fetch(empty_db_url, "SELECT chunk_id, vector_score FROM memora.search_vector('docs', '[1,0,0]', 5)")
    assert hits == [(1, 1.0)]
    assert dump(empty_db_url, "--schema=public") == public_before
    extensions = "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
    assert fetch(empty_db_url, extensions + " ORDER BY 1") == [("plpgsql", "pg_catalog"), ("vector", "extensions")]

    downgrade(empty_db_url, "base")

    assert fetch(empty_db_url, extensions + " WHERE e.extname = 'vector'") == [("vector", "extensions")]


def test_upgrade_downgrade_upgrade_yields_the_same_schema(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    first = memora_schema(empty_db_url)

    downgrade(empty_db_url, "base")
    upgrade(empty_db_url)

    assert memora_schema(empty_db_url) == first


def test_models_match_the_migrations(fresh_db_url: str) -> None:
    engine = sqlalchemy_engine(fresh_db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_schemas": True, "include_name": memora_objects})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()

    assert differences == []


def test_migrations_into_another_schema(empty_db_url: str) -> None:
    upgrade(empty_db_url, schema="memora_alt")
    run_sql(
        empty_db_url,
        "INSERT INTO memora_alt.collection (name, embedding_model, dimensions, metric) VALUES ('docs', 'm', 3, 'l2')",
    )

    schemas = {row[0] for row in fetch(empty_db_url, "SELECT nspname FROM pg_namespace")}
    assert "memora_alt" in schemas
    assert "memora" not in schemas
    assert fetch(empty_db_url, "SELECT version_num FROM memora_alt.alembic_version") == [(HEAD,)]
    indexes = fetch(empty_db_url, "SELECT schemaname, indexdef FROM pg_indexes WHERE indexname LIKE '%_hnsw'")
    assert len(indexes) == 1
    assert indexes[0][0] == "memora_alt"
    assert "vector_l2_ops" in str(indexes[0][1])
    functions = "SELECT prosrc LIKE '%memora.%' FROM pg_proc WHERE pronamespace = 'memora_alt'::regnamespace"
    assert {row[0] for row in fetch(empty_db_url, functions)} == {False}

    downgrade(empty_db_url, "base", schema="memora_alt")

    assert fetch(empty_db_url, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'memora%'") == []


@pytest.fixture
def another_empty_db_url(server_url: str) -> Iterator[str]:
    url = create_database(server_url)
    yield url
    drop_database(server_url, url)


@pytest.mark.parametrize(("start", "end"), [("base", "head"), ("base", "0002"), ("0002", "head")])
def test_offline_sql_builds_the_same_schema_as_online(
    empty_db_url: str, another_empty_db_url: str, start: str, end: str
) -> None:
    if start != "base":
        upgrade(empty_db_url, start)

    psql(empty_db_url, memora_migrations.sql_script(start, end))
    upgrade(another_empty_db_url, end)

    assert memora_schema(empty_db_url) == memora_schema(another_empty_db_url)


def test_offline_sql_downgrades_to_base(fresh_db_url: str) -> None:
    psql(fresh_db_url, memora_migrations.sql_script("head", "base", downgrade=True))

    assert fetch(fresh_db_url, "SELECT nspname FROM pg_namespace WHERE nspname = 'memora'") == []
    assert fetch(fresh_db_url, "SELECT extname FROM pg_extension WHERE extname = 'vector'") == []


def test_concurrent_upgrades_from_several_processes_apply_once(empty_db_url: str) -> None:
    command = [sys.executable, "-m", "app", "--database-url", empty_db_url, "db", "upgrade"]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    results = [(process.wait(timeout=120), process.stderr.read() if process.stderr else b"") for process in processes]
    for process in processes:
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()

    assert [code for code, _ in results] == [0, 0, 0], results
    assert fetch(empty_db_url, "SELECT version_num FROM memora.alembic_version") == [(HEAD,)]
