"""Memora's migrations from someone else's Alembic: a host project whose package is `app` too (host_project/), and
plain `alembic -c <Memora's alembic.ini>`. Both run the real `alembic` command, in a process of their own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import memora_migrations
from tests.conftest import sqlalchemy_engine
from tests.migrations.helpers import HEAD, dump, fetch, run_sql

HOST_PROJECT = Path(__file__).parent / "host_project"

pytestmark = pytest.mark.slow


def alembic(*arguments: str, cwd: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    """`alembic ARGUMENTS` in CWD, with no MEMORA_* setting but those in ENVIRONMENT."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MEMORA_")}
    return subprocess.run(
        [sys.executable, "-m", "alembic", *arguments],
        cwd=cwd,
        env=env | environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


@pytest.fixture
def host_project(tmp_path: Path) -> Path:
    """A copy of host_project/, where autogenerate may write its revision files."""
    return Path(shutil.copytree(HOST_PROJECT, tmp_path / "host", ignore=shutil.ignore_patterns("__pycache__")))


def autogenerate(host_project: Path, **environment: str) -> str:
    """The revision `alembic revision --autogenerate` writes, less the lines every revision has."""
    succeeded(
        alembic("revision", "--autogenerate", "-m", "proposed", "--rev-id", "h099", cwd=host_project, **environment)
    )
    (path,) = (host_project / "migrations" / "versions").glob("*h099*.py")
    text = path.read_text()
    path.unlink()
    return text


def test_one_alembic_upgrade_of_the_host_brings_its_tables_and_memoras(empty_db_url: str, host_project: Path) -> None:
    before = dump(empty_db_url)
    host = {"HOST_DATABASE_URL": sqlalchemy_engine(empty_db_url).url.render_as_string(hide_password=False)}

    succeeded(alembic("upgrade", "head", cwd=host_project, **host))

    assert fetch(empty_db_url, "SELECT version_num FROM public.alembic_version") == [("h009",)]
    assert fetch(empty_db_url, "SELECT version_num FROM memora.alembic_version") == [(HEAD,)]
    # Memora's objects are its owner role's; the host's table, made after Memora's migrations, is the host's.
    owners = (
        "SELECT relname, relowner::regrole::text FROM pg_class"
        " WHERE oid IN ('memora.chunk'::regclass, 'public.customer_note'::regclass) ORDER BY 1"
    )
    owner_role = fetch(empty_db_url, "SELECT value FROM memora.meta WHERE key = 'sql_role_owner'")[0][0]
    (host_user,) = fetch(empty_db_url, "SELECT current_user::text")[0]
    assert fetch(empty_db_url, owners) == [("chunk", owner_role), ("customer_note", host_user)]
    # The host's revision used `op` after Memora's migrations ran inside it: customer_collection is there.
    run_sql(
        empty_db_url,
        "INSERT INTO public.customer (id, name) VALUES (1, 'Ada');"
        " INSERT INTO memora.collection (name, embedding_model, dimensions) VALUES ('docs', 'm', 3);"
        " INSERT INTO public.customer_collection VALUES (1, 1)",
    )
    searched = "SELECT count(*) FROM public.customer_collection cc, memora.search_text('docs', 'fox', 5) s"
    assert fetch(empty_db_url, searched) == [(0,)]

    # The host's autogenerate proposes nothing about Memora's schema, thanks to memora_migrations' filters...
    proposed = autogenerate(host_project, **host)
    assert "op." not in proposed
    assert "memora" not in proposed
    # ...which are what keeps it out.
    unfiltered = autogenerate(host_project, HOST_WITHOUT_MEMORA_FILTERS="1", **host)
    assert "op.drop_table('chunk', schema='memora')" in unfiltered

    succeeded(alembic("downgrade", "base", cwd=host_project, **host))

    assert fetch(empty_db_url, "SELECT count(*) FROM public.alembic_version") == [(0,)]
    run_sql(empty_db_url, "DROP TABLE public.alembic_version")  # Alembic leaves its (empty) version table
    assert dump(empty_db_url) == before


def test_plain_alembic_migrates_only_a_database_it_is_told(empty_db_url: str, tmp_path: Path) -> None:
    ini = str(memora_migrations.ALEMBIC_INI)

    refused = alembic("-c", ini, "upgrade", "head", cwd=tmp_path)

    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert "FAILED: Memora's migrations need to be told which database to migrate" in message
    assert "-x url=postgresql://" in message
    assert "memora db upgrade" in message
    assert list(tmp_path.iterdir()) == []  # no embedded server started here

    succeeded(alembic("-c", ini, "-x", f"url={empty_db_url}", "upgrade", "head", cwd=tmp_path))
    assert memora_migrations.current_revision(empty_db_url) == HEAD

    # Memora's own autogenerate: the models' metadata passed in, env.py imports nothing of app by itself.
    models = "metadata=app.db.models:Base.metadata"
    output = succeeded(alembic("-c", ini, "-x", f"url={empty_db_url}", "-x", models, "check", cwd=tmp_path))
    assert "No new upgrade operations detected" in output
