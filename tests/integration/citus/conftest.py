"""A Citus coordinator for the tests of this folder: MEMORA_TEST_CITUS_URL (a superuser's URL to a database with
the citus extension and its workers added, as `docker compose --profile citus up` makes), else they are skipped.

Each test migrates a schema of its own on the coordinator and drops it after: a database per test would need the
extension and the workers set up in each one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

SKIP_REASON = (
    "MEMORA_TEST_CITUS_URL is not set: the Citus tests need a Citus coordinator (docker compose --profile citus up)"
)


@pytest.fixture(scope="session")
def citus_url() -> str:
    url = os.environ.get("MEMORA_TEST_CITUS_URL")
    if not url:
        pytest.skip(SKIP_REASON)
    return url


@pytest.fixture
def citus_schema(citus_url: str) -> Iterator[str]:
    """The name of a schema of the test's own on the coordinator (nothing in it yet), dropped after."""
    name = f"memora_citus_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(citus_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
