"""MEMORA_SERVER_TIMING: where a search's time went, in a Server-Timing header; nothing when it is off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings
from app.observe.timing import HEADER
from tests.integration.search.corpus import URL, store_corpus


@pytest.fixture
def timed(fresh_db_url: str) -> Iterator[TestClient]:
    """The API as served, its own sessions committing, with MEMORA_SERVER_TIMING on."""
    with TestClient(create_app(Settings(database_url=fresh_db_url, server_timing=True))) as client:
        yield client


def parts(header: str) -> dict[str, float]:
    named = [item.strip().split(";dur=") for item in header.split(",")]
    return {name: float(ms) for name, ms in named}


def test_a_hybrid_search_tells_its_parts(timed: TestClient) -> None:
    store_corpus(timed)

    response = timed.post(URL, json={"query": "nocturnal aardvark", "include": ["highlights"]})

    assert response.status_code == 200, response.text
    ms = parts(response.headers[HEADER])
    assert list(ms) == ["lookup", "embed", "search", "commit", "respond", "other", "total"]
    assert "highlight" not in ms  # in the search's own statement
    assert all(value >= 0 for value in ms.values()), ms
    assert sum(value for name, value in ms.items() if name != "total") == pytest.approx(ms["total"], abs=0.01)


def test_a_text_search_has_no_embedding_part(timed: TestClient) -> None:
    store_corpus(timed)

    response = timed.post(URL, json={"query": "aardvark", "mode": "text"})

    assert list(parts(response.headers[HEADER])) == ["search", "commit", "respond", "other", "total"]


def test_off_by_default(api: TestClient) -> None:
    store_corpus(api)

    response = api.post(URL, json={"query": "aardvark", "mode": "text"})

    assert response.status_code == 200
    assert HEADER not in response.headers
