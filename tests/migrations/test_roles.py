"""Migration 0007's group roles: named so that installs in one cluster never share them, owning Memora's objects,
skipped (not failed) for a user without CREATEROLE, and removed by the downgrade unless another database uses them."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from app.db import sql_roles
from tests.conftest import create_database, drop_database
from tests.migrations.helpers import downgrade, fetch, run_sql, upgrade

ROLES = "SELECT key, value FROM {schema}.meta WHERE key LIKE 'sql\\_role%' ORDER BY key"
NOT_OWNED = """
SELECT c.oid::regclass::text FROM pg_class c
WHERE c.relnamespace = '{schema}'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'i')
  AND c.relowner <> '{owner}'::regrole
UNION ALL
SELECT p.oid::regprocedure::text FROM pg_proc p
WHERE p.pronamespace = '{schema}'::regnamespace AND p.proowner <> '{owner}'::regrole
"""


GRANTED = """
SELECT count(*) FROM pg_class c LEFT JOIN LATERAL aclexplode(c.relacl) a ON true
WHERE c.relnamespace = 'memora'::regnamespace
"""


def roles_of(url: str, schema: str = "memora") -> dict[str, str]:
    return {str(key): str(value) for key, value in fetch(url, ROLES.format(schema=schema))}


def existing(url: str, names: list[str]) -> set[str]:
    return {str(row[0]) for row in fetch(url, f"SELECT rolname FROM pg_roles WHERE rolname IN {tuple(names)!r}")}


def test_roles_are_named_after_the_schema_and_the_database_and_own_memoras_objects(empty_db_url: str) -> None:
    database = make_url(empty_db_url).database
    upgrade(empty_db_url)

    roles = roles_of(empty_db_url)
    assert roles == {
        "sql_role_owner": f"memora_{database}_owner",
        "sql_role_reader": f"memora_{database}_reader",
        "sql_role_writer": f"memora_{database}_writer",
        "sql_roles": "created:owner,writer,reader",
    }
    owner, reader, writer = roles["sql_role_owner"], roles["sql_role_reader"], roles["sql_role_writer"]
    described = fetch(
        empty_db_url,
        f"SELECT rolcanlogin, rolsuper, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = '{reader}'",
    )
    assert described == [(False, False, f"Memora reader of schema memora in database {database}")]
    assert fetch(empty_db_url, f"SELECT pg_has_role('{writer}', '{reader}', 'MEMBER')") == [(True,)]
    assert fetch(empty_db_url, NOT_OWNED.format(schema="memora", owner=owner)) == []


def test_two_databases_with_schema_memora_in_one_cluster_have_roles_of_their_own(server_url: str) -> None:
    first, second = create_database(server_url), create_database(server_url)
    try:
        upgrade(first)
        upgrade(second)
        assert set(roles_of(first).values()).isdisjoint(
            set(roles_of(second).values()) - {"created:owner,writer,reader"}
        )

        downgrade(first, "0006")

        names = [value for key, value in roles_of(second).items() if key != "sql_roles"]
        assert existing(second, names) == set(names)
        assert roles_of(first) == {}
    finally:
        drop_database(server_url, first)
        drop_database(server_url, second)


def test_a_database_named_like_its_schema_gets_the_plain_names(server_url: str) -> None:
    url = make_url(server_url).set(database="ml").render_as_string(hide_password=False)
    run_sql(server_url, "CREATE DATABASE ml")
    try:
        upgrade(url, schema="ml")
        assert roles_of(url, "ml")["sql_role_reader"] == "ml_reader"
        downgrade(url, "base", schema="ml")
        assert existing(url, ["ml_owner", "ml_writer", "ml_reader"]) == set()
    finally:
        drop_database(server_url, url)


def test_the_downgrade_keeps_roles_that_a_database_cloned_from_this_one_uses(fresh_db_url: str) -> None:
    template_roles = roles_of(fresh_db_url)  # a clone shares its template's roles (and its grants to them)
    names = [value for key, value in template_roles.items() if key != "sql_roles"]

    downgrade(fresh_db_url, "0006")

    assert existing(fresh_db_url, names) == set(names)  # the template still grants to them
    assert roles_of(fresh_db_url) == {}
    # ...but nothing in this database does any more, nor belongs to them.
    assert fetch(fresh_db_url, f"{GRANTED} AND a.grantee::regrole::text IN {tuple(names)!r}") == [(0,)]
    assert fetch(fresh_db_url, f"{GRANTED} AND c.relowner::regrole::text IN {tuple(names)!r}") == [(0,)]

    upgrade(fresh_db_url)

    database = make_url(fresh_db_url).database
    assert roles_of(fresh_db_url)["sql_role_owner"] == f"memora_{database}_owner"


@pytest.fixture
def own_database(server_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A database owned by a new login role (with CREATEROLE if the test's parameter says so), with pgvector made
    by the superuser, as a managed PostgreSQL gives it; the role's URL and name."""
    name = f"migrator_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    attributes = "CREATEROLE" if request.param else "NOCREATEROLE"
    run_sql(server_url, f"CREATE ROLE {name} LOGIN {attributes} PASSWORD '{password}'")
    url = create_database(server_url)
    run_sql(server_url, f"ALTER DATABASE {make_url(url).database} OWNER TO {name}")
    run_sql(url, "CREATE EXTENSION vector")
    yield make_url(url).set(username=name, password=password).render_as_string(hide_password=False), name
    drop_database(server_url, url)
    run_sql(server_url, f"DROP ROLE {name}")


@pytest.mark.parametrize("own_database", [False], indirect=True)
def test_a_user_without_createrole_migrates_without_roles(own_database: tuple[str, str]) -> None:
    url, _ = own_database

    upgrade(url)

    assert roles_of(url) == {"sql_roles": "skipped"}
    # The admin functions are the migrating user's only, all the same.
    assert fetch(url, "SELECT has_function_privilege('public', 'memora.refresh_text_stats(bigint)', 'EXECUTE')") == [
        (False,)
    ]
    downgrade(url, "base")
    assert fetch(url, "SELECT to_regnamespace('memora')") == [(None,)]


@pytest.mark.parametrize("own_database", [True], indirect=True)
def test_a_user_with_createrole_migrates_as_the_owner_role_and_may_make_logins(own_database: tuple[str, str]) -> None:
    url, migrator = own_database

    upgrade(url)
    upgrade(url)  # nothing to do: still fine as the owner

    # A collection's partition and nearest function are the owner's too, whoever makes the collection.
    run_sql(url, "INSERT INTO memora.collection (name, embedding_model, dimensions) VALUES ('docs', 'm', 3)")
    roles = roles_of(url)
    owner = roles["sql_role_owner"]
    assert fetch(url, NOT_OWNED.format(schema="memora", owner=owner)) == []
    assert fetch(url, f"SELECT pg_has_role('{migrator}', '{owner}', 'MEMBER')") == [(True,)]
    with psycopg.connect(url, autocommit=True) as conn:
        sql_roles.create_login(conn, "memora", f"{migrator}_ada", "reader", "secret")
        assert [login.name for login in sql_roles.logins(conn, "memora")] == [f"{migrator}_ada"]
        sql_roles.drop_login(conn, "memora", f"{migrator}_ada")

    downgrade(url, "base")

    names = [value for key, value in roles.items() if key != "sql_roles"]
    assert existing(url, names) == set()
    assert fetch(url, "SELECT to_regnamespace('memora')") == [(None,)]


def test_a_role_of_the_same_name_that_is_not_this_installs_is_never_taken_over(empty_db_url: str) -> None:
    database = make_url(empty_db_url).database
    squatter = f"memora_{database}_reader"
    run_sql(empty_db_url, f"CREATE ROLE {squatter} NOLOGIN")
    try:
        upgrade(empty_db_url)

        reader = roles_of(empty_db_url)["sql_role_reader"]
        assert reader != squatter
        assert re.fullmatch(r"memora_[0-9a-f]{9}_reader", reader)  # the schema and a hash of the database
        assert fetch(empty_db_url, f"SELECT has_table_privilege('{squatter}', 'memora.document', 'SELECT')") == [
            (False,)
        ]
        downgrade(empty_db_url, "base")
        assert existing(empty_db_url, [squatter, reader]) == {squatter}
    finally:
        run_sql(empty_db_url, f"DROP ROLE IF EXISTS {squatter}")
