"""`memora db role create|list|drop` and `memora db upgrade --service-role`, and docker-compose.yml's roles
(docker/roles.sql) on a real server: the migration runs as a role that may create roles, the service as a plain
login that is a member of the owner role."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from app.cli import cli
from app.db.embedded import bin_dir
from tests.conftest import create_database, drop_database

# Written as a psql user writes it (docs/sql.md): the schema is memora.
pytestmark = pytest.mark.memora_schema

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def memora(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a new process (errors as one line on stderr)."""
    command = [sys.executable, "-m", "app", "--database-url", url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, input=stdin)


def test_role_create_list_drop(fresh_db_url: str) -> None:
    name = f"ada_{secrets.token_hex(3)}"

    created = memora(fresh_db_url, "db", "role", "create", name, "--reader", "--password-stdin", stdin="s3cret-pass\n")
    listed = memora(fresh_db_url, "db", "role", "list")
    again = memora(fresh_db_url, "db", "role", "create", name, "--writer")

    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines()[0].startswith(f"created role {name}, member of memora_")
    connect = created.stdout.splitlines()[-1].removeprefix('connect: psql "').removesuffix('"')
    assert (make_url(connect).username, make_url(connect).password) == (name, None)  # psql asks for it
    assert f"{name}\treader" in listed.stdout.splitlines()
    assert again.returncode == 1
    assert again.stderr == f"error: role {name} exists already; pick another name, or drop it first\n"
    as_ada = make_url(connect).set(password="s3cret-pass").render_as_string(hide_password=False)
    with psycopg.connect(as_ada) as conn:
        assert conn.execute("SELECT count(*) FROM memora.collection").fetchone() == (0,)

    dropped = memora(fresh_db_url, "db", "role", "drop", name)
    assert dropped.stdout == f"dropped role {name}\n"
    assert name not in memora(fresh_db_url, "db", "role", "list").stdout


def test_a_generated_password_is_printed_once_in_the_url(fresh_db_url: str) -> None:
    name = f"bo_{secrets.token_hex(3)}"
    created = memora(fresh_db_url, "db", "role", "create", name, "--writer")
    try:
        assert str(make_url(fresh_db_url).password) not in created.stdout  # the admin's, never shown
        connect = created.stdout.splitlines()[-1].removeprefix('connect: psql "').removesuffix('"')
        with psycopg.connect(connect) as conn:
            assert conn.execute("SELECT pg_has_role(current_user, 'pg_read_all_data', 'MEMBER')").fetchone() == (False,)
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
    finally:
        memora(fresh_db_url, "db", "role", "drop", name)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["create", "Ada", "--reader"], "error: name: must be a lower-case SQL identifier"),
        (["create", "pg_ada", "--reader"], "error: name: must be a lower-case SQL identifier"),
        (["create", "ada", "--reader", "--writer"], "error: role: give exactly one of --reader and --writer"),
        (["create", "ada"], "error: role: give exactly one of --reader and --writer"),
        (["drop", "postgres"], "error: no login role postgres in the reader or writer group of schema memora"),
    ],
)
def test_role_errors_are_one_line(fresh_db_url: str, args: list[str], error: str) -> None:
    result = memora(fresh_db_url, "db", "role", *args)
    assert result.returncode == 1
    assert result.stderr.startswith(error)
    assert result.stderr.count("\n") == 1


def test_roles_in_a_database_without_them_say_how_to_get_them(empty_db_url: str) -> None:
    result = memora(empty_db_url, "db", "role", "list")
    assert result.returncode == 1
    assert result.stderr.startswith("error: schema memora has no SQL roles: run `memora db upgrade`")


def test_the_roles_of_docker_compose_migrate_and_serve_without_a_superuser(server_url: str) -> None:
    migrator, app = f"migrator_{secrets.token_hex(3)}", f"app_{secrets.token_hex(3)}"
    script = (
        (ROOT / "docker" / "roles.sql")
        .read_text()
        .replace("memora_app", app)
        .replace("ROLE memora ", f"ROLE {migrator} ")
        .replace("OWNER TO memora", f"OWNER TO {migrator}")
    )
    url = create_database(server_url)
    psql = [str(bin_dir() / "psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1", url]
    variables = ["-v", "migrator_password=m", "-v", "app_password=a"]
    subprocess.run([*psql, *variables], input=script, check=True, capture_output=True, text=True)
    as_migrator = make_url(url).set(username=migrator, password="m").render_as_string(hide_password=False)
    as_app = make_url(url).set(username=app, password="a").render_as_string(hide_password=False)
    try:
        upgraded = runner.invoke(cli, ["--database-url", as_migrator, "db", "upgrade", "--service-role", app])
        assert upgraded.exit_code == 0, upgraded.output
        assert upgraded.output.splitlines()[-1].startswith(f"{app} is a member of memora_")
        # The compose file's second step: the migrating role makes the admin key the api's `serve` asks for.
        admin_key = memora(as_migrator, "key", "create", "admin", "--role", "admin")
        assert admin_key.returncode == 0, admin_key.stderr
        assert admin_key.stdout.startswith("mk_")

        created = memora(as_app, "collection", "create", "notes", "--provider", "hashing", "--dimensions", "16")
        assert created.returncode == 0, created.stderr
        with psycopg.connect(as_app, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO memora.document (collection_id, external_id, content)"
                " SELECT id, 'a', 'A fox in a container.' FROM memora.collection"
            )
        worked = memora(as_app, "worker", "--until-empty")
        assert worked.returncode == 0, worked.stderr
        with psycopg.connect(as_app) as conn:
            found = conn.execute(
                "SELECT count(*) FROM memora.search_hybrid('notes', 'fox', array_fill(0.1, ARRAY[16])::vector, 3)"
            ).fetchone()
            assert found == (1,)
        assert memora(as_app, "collection", "delete", "notes").returncode == 0
        # The service may not make roles, nor migrate past what its owner role may (CREATEROLE for 0007's roles).
        refused = memora(as_app, "db", "role", "create", "eve", "--reader")
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"error: {app} may not manage roles (permission denied to create role)")
    finally:
        runner.invoke(cli, ["--database-url", as_migrator, "db", "downgrade", "base"])
        drop_database(server_url, url)
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {app}")
            conn.execute(f"DROP ROLE {migrator}")
