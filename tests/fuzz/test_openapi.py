"""Property-based fuzzing of the OpenAPI spec with schemathesis: every operation with generated (and deliberately
invalid) parameters and bodies, then sequences of operations linked by the spec, against the served API of
tests/fuzz/conftest.py. The property: no response is a 5xx, and responses with a documented status match their
schema and content type.

Bounded for CI (two to three minutes on two cores) and derandomized (a fixed seed, though schemathesis also learns
from the answers, so runs differ a little); set MEMORA_FUZZ_EXAMPLES (examples per operation) and
MEMORA_FUZZ_SCENARIOS (stateful scenarios) to run longer, and MEMORA_FUZZ_RANDOM=1 to explore other inputs (each
failure prints a curl command that reproduces it). The second pass of `make test`, in schema ml, runs a tenth of the
examples: it proves the schema rewrite on generated input, not a second search.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from app.api.main import create_app
from app.config import Settings
from tests.fuzz.conftest import COLLECTION, DATASET, SNAPSHOT, Served
from tests.schema import SCHEMA

_SHARE = 1 if SCHEMA == "memora" else 10
EXAMPLES = int(os.environ.get("MEMORA_FUZZ_EXAMPLES", 150 // _SHARE))
SCENARIOS = int(os.environ.get("MEMORA_FUZZ_SCENARIOS", 100 // _SHARE))
RANDOM = os.environ.get("MEMORA_FUZZ_RANDOM", "") not in ("", "0")
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
UPSTREAM_CODES = {"embedding_provider", "chat_provider", "rerank_provider", "upstream_timeout"}

pytestmark = pytest.mark.slow

# Requests sent, by kind of test and status class, and the 502/504s passed on from the loopback provider (see
# _passed_on); printed at the end of the module.
SENT: Counter[str] = Counter()
PASSED_ON: Counter[str] = Counter()


@schemathesis.serializer("application/x-ndjson")
def _ndjson(context: schemathesis.SerializationContext, value: Any) -> bytes:
    """JSONL bodies (dataset imports) as generated text; a lone surrogate goes out as the invalid UTF-8 it makes."""
    return str(value).encode("utf-8", "surrogatepass")


def _settings(max_examples: int) -> hypothesis.settings:
    """Reproducible by default (derandomize); MEMORA_FUZZ_RANDOM=1 for a random run."""
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
    )


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every documented operation, read from the app's spec without a server."""
    spec = create_app(Settings(database_url="postgresql://localhost/unused")).openapi()
    return [(method.upper(), path) for path, operations in spec["paths"].items() for method in operations]


@pytest.fixture(scope="module")
def api_schema(served: Served) -> Iterator[schemathesis.BaseSchema]:
    yield schemathesis.openapi.from_url(f"{served.base_url}/openapi.json")
    total = sum(SENT.values())
    by_kind = ", ".join(f"{kind}: {count}" for kind, count in sorted(SENT.items()))
    print(f"\nschemathesis sent {total} requests ({by_kind}); provider refusals passed on: {dict(PASSED_ON)}")


@pytest.fixture
def seeded(served: Served) -> Served:
    """Every operation starts with the seeded rows present, whatever an earlier one deleted."""
    served.seed()
    return served


def _known(path: str, served: Served) -> dict[str, Any]:
    """Path parameters that name seeded rows: random names alone would only ever reach the 404."""
    known: dict[str, Any] = {"name": COLLECTION if path.startswith("/v1/collections") else DATASET}
    known |= {"external_id": "aardvark", "snapshot": SNAPSHOT, "example_id": served.example_ids[0]}
    return {key: value for key, value in known.items() if "{" + key + "}" in path}


@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda value: value)
def test_no_server_error(api_schema: schemathesis.BaseSchema, seeded: Served, method: str, path: str) -> None:
    """Each operation with valid inputs, invalid ones (schemathesis' negative mode) and valid ones on seeded rows."""
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=_known(path, seeded)),
    )

    @hypothesis.given(case=cases)
    @_settings(EXAMPLES)
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=seeded.base_url, timeout=60)
        _validate("operations", case, response)

    run()


def test_stateful(api_schema: schemathesis.BaseSchema, seeded: Served) -> None:
    """Sequences of operations along the links schemathesis derives from the spec (a created collection's name into
    its reads, updates and deletes; a dataset's into its examples, snapshots and exports)."""
    failures: list[str] = []

    class Scenarios(api_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": seeded.base_url, "timeout": 60}

        def setup(self) -> None:
            seeded.reset()

        def validate_response(self, response: Any, case: schemathesis.Case, *args: Any, **kwargs: Any) -> None:
            # Collected, not raised: Hypothesis would replay a failing scenario against a server whose rows the
            # first run changed, and report that as a flaky strategy instead of the failure.
            try:
                _validate("stateful", case, response)
            except (AssertionError, FailureGroup) as failure:
                failures.append(f"{case.as_curl_command()}\n{failure}")

    Scenarios.run(settings=hypothesis.settings(_settings(SCENARIOS), stateful_step_count=8))
    assert not failures, f"{len(failures)} failures, the first ones:\n" + "\n\n".join(failures[:5])
    assert SENT["stateful 2xx"] > SCENARIOS, f"the scenarios hardly got past their first step: {SENT}"


def _validate(kind: str, case: schemathesis.Case, response: Any) -> None:
    """Count the response, and check it."""
    SENT[f"{kind} {response.status_code // 100}xx"] += 1
    if _passed_on(response):
        PASSED_ON[kind] += 1
        case.validate_response(response, checks=[check for check in CHECKS if check is not not_a_server_error])
        return
    case.validate_response(response, checks=CHECKS)


def _passed_on(response: Any) -> bool:
    """A 502 or 504 naming the embedding, chat or rerank provider: the loopback provider refused a generated model
    name (or vector size), and the API passes its answer on as documented. The provider's doing, not Memora's."""
    if response.status_code not in (502, 504):
        return False
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return False
    return code in UPSTREAM_CODES
