"""Memora's migrations in other people's databases: they touch only Memora's schema and undo cleanly."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.config import Settings
from app.db import migrate, sqlfiles
from app.db.embedded import bin_dir
from app.db.models import Base
from app.resources import MIGRATIONS_DIR
from tests.conftest import sqlalchemy_engine

HEAD = migrate.head_revision()


def dump(url: str, *options: str) -> str:
    """pg_dump --schema-only of the database (or of the schemas named in options), for comparisons."""
    result = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--schema-only", "--no-owner", "--restrict-key=memora", *options, url],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def run_sql(url: str, statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statements)


def fetch(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def settings_for(url: str, schema: str = "memora") -> Settings:
    return Settings(database_url=url, db_schema=schema)


def test_upgrade_on_an_empty_database(empty_db_url: str) -> None:
    migrate.upgrade(settings_for(empty_db_url))

    tables = {row[0] for row in fetch(empty_db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'memora'")}
    assert {"collection", "document", "chunk", "embedding", "dataset", "example", "alembic_version"} <= tables
    assert fetch(empty_db_url, "SELECT version_num FROM memora.alembic_version") == [(HEAD,)]
    assert fetch(empty_db_url, "SELECT extname FROM pg_extension WHERE extname = 'vector'") == [("vector",)]
    assert migrate.current_revision(settings_for(empty_db_url).database_url or "", "memora") == HEAD


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

    migrate.upgrade(settings_for(empty_db_url))

    assert dump(empty_db_url, "--schema=public") == public_before
    assert fetch(empty_db_url, "SELECT version_num FROM public.alembic_version") == [("their_rev_42",)]
    assert fetch(empty_db_url, "SELECT name FROM public.customer ORDER BY id") == [("Ada",), ("Grace",)]

    migrate.downgrade(settings_for(empty_db_url), "base")

    assert dump(empty_db_url) == before
    assert fetch(empty_db_url, "SELECT version_num FROM public.alembic_version") == [("their_rev_42",)]


def test_downgrade_to_base_removes_every_object_of_ours(empty_db_url: str) -> None:
    before = dump(empty_db_url)
    migrate.upgrade(settings_for(empty_db_url))
    run_sql(
        empty_db_url,
        "INSERT INTO memora.collection (name, embedding_model, dimensions) VALUES ('docs', 'm', 3)",
    )

    migrate.downgrade(settings_for(empty_db_url), "base")

    assert dump(empty_db_url) == before
    assert fetch(empty_db_url, "SELECT nspname FROM pg_namespace WHERE nspname = 'memora'") == []
    assert fetch(empty_db_url, "SELECT extname FROM pg_extension WHERE extname = 'vector'") == []


def test_downgrade_keeps_a_vector_extension_that_was_there_before(empty_db_url: str) -> None:
    run_sql(empty_db_url, "CREATE EXTENSION vector; CREATE TABLE public.items (embedding vector(3))")
    before = dump(empty_db_url)

    migrate.upgrade(settings_for(empty_db_url))
    migrate.downgrade(settings_for(empty_db_url), "base")

    assert dump(empty_db_url) == before


def test_upgrade_downgrade_upgrade_yields_the_same_schema(empty_db_url: str) -> None:
    migrate.upgrade(settings_for(empty_db_url))
    first = dump(empty_db_url, "--schema=memora")

    migrate.downgrade(settings_for(empty_db_url), "base")
    migrate.upgrade(settings_for(empty_db_url))

    assert dump(empty_db_url, "--schema=memora") == first


def test_models_match_the_migrations(fresh_db_url: str) -> None:
    engine = sqlalchemy_engine(fresh_db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"include_schemas": True, "include_name": migrate.include_name},
        )
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()

    assert differences == []


def test_migrations_into_another_schema(empty_db_url: str) -> None:
    settings = settings_for(empty_db_url, schema="memora_alt")

    migrate.upgrade(settings)
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

    migrate.downgrade(settings, "base")

    assert fetch(empty_db_url, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'memora%'") == []


def test_offline_sql_builds_the_same_schema_as_online(empty_db_url: str, fresh_db_url: str) -> None:
    script = migrate.sql_script(settings_for(empty_db_url), "base", "head")
    psql = [str(bin_dir() / "psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--quiet", empty_db_url]

    subprocess.run(psql, input=script, check=True, capture_output=True, text=True)

    assert dump(empty_db_url, "--schema=memora") == dump(fresh_db_url, "--schema=memora")

    downgrade = migrate.sql_script(settings_for(empty_db_url), "head", "base", downgrade=True)
    subprocess.run(psql, input=downgrade, check=True, capture_output=True, text=True)

    assert fetch(empty_db_url, "SELECT nspname FROM pg_namespace WHERE nspname = 'memora'") == []


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


def test_every_sql_function_file_is_applied_by_a_revision() -> None:
    revisions = "\n".join(path.read_text() for path in (MIGRATIONS_DIR / "versions").glob("*.py"))

    for name in sqlfiles.function_files():
        assert f'apply_sql_file("{name}")' in revisions, name


@pytest.mark.parametrize("schema", ["memora", "tenant_7"])
def test_sql_files_are_rewritten_for_the_target_schema(schema: str) -> None:
    for name in sqlfiles.function_files():
        text = sqlfiles.read(name, schema)
        assert f"{schema}." in text
        if schema != "memora":
            assert "memora." not in text
