"""The console's pages are not in the OpenAPI spec (they are HTML), so schemathesis does not reach them: here every
console route gets generated query strings and forms (the fields its pages use, with hostile values: long, NUL,
control characters, non-numbers, JSON that is not an object, cursors that are not), with a valid CSRF token on
forms. The property: no answer is a 5xx. Bounded like the spec's fuzzing; MEMORA_FUZZ_EXAMPLES runs it longer."""

from __future__ import annotations

import os
import re
from typing import Any

import httpx
import hypothesis
import pytest
from hypothesis import strategies as st

from app.api.main import create_app
from app.auth.rules import api_routes
from app.config import Settings
from tests.fuzz.conftest import COLLECTION, DATASET, SNAPSHOT, Served
from tests.schema import SCHEMA

EXAMPLES = int(os.environ.get("MEMORA_FUZZ_EXAMPLES", 60 if SCHEMA == "memora" else 9)) // 3
# Every field a console page or form reads.
FIELDS = [
    "query", "k", "filter", "mode", "fusion", "weights.text", "weights.vector", "candidates", "ef_search", "compare",
    "b.mode", "b.fusion", "b.weights.text", "b.candidates", "b.ef_search", "status", "cursor", "part", "id", "at",
    "snapshot", "against", "change", "split", "label", "near", "provider", "threshold", "format", "next", "key",
    "name", "embedding_provider", "dimensions", "description", "question", "external_id", "members", "drop", "train",
    "validation", "test", "seed", "stratified", "k", "dropped", "mode",
]  # fmt: skip
HOSTILE = st.sampled_from(
    ["", "0", "-1", "1e309", "NaN", "99999999999999999999", "\x00", "\u202e", "a" * 5000, "{", "[]", '{"$or": 1}',
     "null", "true", "../../etc/passwd", "<script>", "MA==", "!!!", "v1", SNAPSHOT, "1", "rrf", "text"]
)  # fmt: skip
VALUES = st.one_of(HOSTILE, st.text(max_size=40))
PARAMS = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6)


def routes() -> list[tuple[str, str]]:
    app = create_app(Settings(database_url="postgresql://localhost/unused"))
    return [
        (method, route.path)
        for route in api_routes(app)
        if route.path.startswith("/console") and "static" not in route.path
        for method in sorted(route.methods or ())
        if method != "HEAD"
    ]


def url_of(path: str) -> str:
    name = DATASET if path.startswith("/console/datasets") else COLLECTION
    return path.replace("{name}", name)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), routes(), ids=[f"{m} {p}" for m, p in routes()])
def test_no_console_input_is_a_server_error(served: Served, method: str, path: str) -> None:
    with httpx.Client(base_url=served.base_url, timeout=60, headers={"Accept": "text/html"}) as client:
        token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/console").text)
        assert token is not None

        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
        @hypothesis.given(fields=PARAMS)
        def check(fields: dict[str, Any]) -> None:
            if method == "GET":
                response = client.get(url_of(path), params=fields)
            else:
                response = client.post(url_of(path), data=fields, headers={"X-CSRF-Token": token.group(1)})
            assert response.status_code < 500, (method, path, fields, response.text[:500])

        check()
        served.seed()  # what a fuzzed form deleted is back for the next route
