"""The fuzzing of tests/fuzz/test_openapi.py with keys required, every request sent with a read key: no response is
a 5xx, and no route that writes answers a 2xx (the read key changes nothing, whatever it sends).

Bounded like the open run, and cheaper: most write requests stop at the access check. MEMORA_FUZZ_AUTH_EXAMPLES sets
the examples per operation.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode

from app.api.main import create_app
from app.auth.rules import api_routes, rule_of
from app.config import Settings
from tests.fuzz.conftest import COLLECTION, DATASET, SNAPSHOT, Keyed
from tests.fuzz.test_openapi import CHECKS, _known, _passed_on, _settings
from tests.schema import SCHEMA

EXAMPLES = int(os.environ.get("MEMORA_FUZZ_AUTH_EXAMPLES", 40 if SCHEMA == "memora" else 4))

pytestmark = pytest.mark.slow

SENT: Counter[str] = Counter()


def _operations() -> list[tuple[str, str, bool]]:
    """(method, path, writes) of every documented operation; writes: its rule needs a write or admin key."""
    app = create_app(Settings(database_url="postgresql://localhost/unused"))
    writes = {(method, route.path_format): bool((rule := rule_of(route)) and rule.writes)
              for route in api_routes(app) for method in route.methods or ()}  # fmt: skip
    spec = app.openapi()
    documented = [(m.upper(), path) for path, operations in spec["paths"].items() for m in operations]
    return [(method, path, writes[method, path]) for method, path in documented]


@pytest.fixture(scope="module")
def api_schema(served_with_keys: Keyed) -> Iterator[schemathesis.BaseSchema]:
    yield schemathesis.openapi.from_url(f"{served_with_keys.base_url}/openapi.json")
    print(f"\nschemathesis sent {sum(SENT.values())} requests with a read key: {dict(sorted(SENT.items()))}")


@pytest.fixture
def seeded(served_with_keys: Keyed) -> Keyed:
    served_with_keys.seed()
    return served_with_keys


@pytest.mark.parametrize(("method", "path", "writes"), _operations(), ids=lambda value: value)
def test_a_read_key_writes_nothing_and_breaks_nothing(
    api_schema: schemathesis.BaseSchema, seeded: Keyed, method: str, path: str, writes: bool
) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=_known(path, seeded)),
    )
    headers = {"Authorization": f"Bearer {seeded.read_key}"}

    @hypothesis.given(case=cases)
    @_settings(EXAMPLES)
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=seeded.base_url, headers=headers, timeout=60)
        kind = "write" if writes else "read"
        SENT[f"{kind} {response.status_code}"] += 1
        assert not (writes and 200 <= response.status_code < 300), f"a read key wrote: {case.as_curl_command()}"
        checks = [check for check in CHECKS if not _passed_on(response) or check.__name__ != "not_a_server_error"]
        case.validate_response(response, checks=checks)

    run()


def test_the_seeded_rows_are_as_they_were(served_with_keys: Keyed) -> None:
    """After the run above, not seeded again: whatever the read key sent, the rows are the seeded ones."""
    with httpx.Client(base_url=served_with_keys.base_url, headers=served_with_keys.headers, timeout=60) as client:
        collections = [row["name"] for row in client.get("/v1/collections").json()]
        datasets: list[Any] = client.get("/v1/datasets").json()
        snapshots = [row["name"] for row in client.get(f"/v1/datasets/{DATASET}/snapshots").json()]
    assert collections == [COLLECTION]
    assert [(row["name"], row["examples"]) for row in datasets] == [(DATASET, 12)]
    assert snapshots == [SNAPSHOT]
