"""GET /v1/collections/{name}/chunks?document=: a document's chunks in order, keyset pages, and which of them the
collection's active embedding version has a vector for."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.config import Settings
from app.db.engine import make_engine
from app.db.models import Chunk, Collection, Document
from app.embeddings.hashing import HashingEmbedder
from app.ingest.worker import Worker
from tests.factories import make_chunk, make_embedding

DIMENSIONS = 16
URL = "/v1/collections/docs/chunks"
PARTS = ["First part of the text.", "Second part, a little longer.", "Third part.", "Fourth and last part."]


def given(external_id: str, parts: list[str], **chunk: Any) -> dict[str, Any]:
    """A document that brings its chunks (PARTS, joined by spaces) and their vectors."""
    embedder = HashingEmbedder(DIMENSIONS)
    chunks = [{"text": p, "embedding": embedder.embed([p])[0].tolist(), **chunk} for p in parts]
    return {"external_id": external_id, "title": "Given", "content": " ".join(parts), "chunks": chunks}


def pages(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    """Every page of the listing, following next_cursor."""
    found, cursor = [], None
    while True:
        response = api.get(URL, params=params | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        found.append(response.json())
        if (cursor := response.json()["next_cursor"]) is None:
            return found


@pytest.fixture(autouse=True)
def collection(api: TestClient) -> None:
    body = {"name": "docs", "embedding_provider": "hashing", "dimensions": DIMENSIONS}
    assert api.post("/v1/collections", json=body).status_code == 201


def test_chunks_in_order_with_offsets_text_and_vectors(api: TestClient) -> None:
    assert api.post("/v1/collections/docs/documents", json=given("a/b.txt", PARTS)).status_code == 202

    response = api.get(URL, params={"document": "a/b.txt"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["external_id"], body["status"], body["active_version"], body["next_cursor"]) == (
        "a/b.txt", "ready", 1, None,
    )  # fmt: skip
    content = " ".join(PARTS)
    assert [c["ordinal"] for c in body["items"]] == [0, 1, 2, 3]
    for chunk, part in zip(body["items"], PARTS, strict=True):
        assert content[chunk["char_start"] : chunk["char_end"]] == chunk["text"] == part
        assert (chunk["chars"], chunk["truncated"], chunk["embedded"]) == (len(part), False, True)
        assert (chunk["title"], chunk["headings"], chunk["metadata"]) == ("Given", [], {})
        assert chunk["token_count"] > 0
    assert len({c["chunk_id"] for c in body["items"]}) == 4


def test_keyset_pages_cover_every_chunk_once(api: TestClient) -> None:
    parts = [f"Part number {i} of a long document." for i in range(7)]
    api.post("/v1/collections/docs/documents", json=given("long", parts))

    found = pages(api, document="long", limit=3)

    assert [len(page["items"]) for page in found] == [3, 3, 1]
    assert [c["text"] for page in found for c in page["items"]] == parts
    assert pages(api, document="long", limit=7)[0]["next_cursor"] is None


def test_text_chars_cuts_the_text_and_says_so(api: TestClient) -> None:
    api.post("/v1/collections/docs/documents", json=given("a", PARTS))

    items = api.get(URL, params={"document": "a", "text_chars": 5}).json()["items"]

    assert [(c["text"], c["truncated"], c["chars"]) for c in items[:2]] == [
        ("First", True, len(PARTS[0])), ("Secon", True, len(PARTS[1])),
    ]  # fmt: skip
    whole = api.get(URL, params={"document": "a", "text_chars": 1000}).json()["items"]
    assert [c["truncated"] for c in whole] == [False] * 4


def test_embedded_follows_the_active_version(api: TestClient, db: Session) -> None:
    api.post("/v1/collections/docs/documents", json=given("a", PARTS))
    assert api.post("/v1/collections/docs/embeddings", json={"metric": "l2"}).status_code == 201
    activated = api.post("/v1/collections/docs/embeddings/2/activate", json={"force": True})
    assert activated.status_code == 200, activated.text
    before = api.get(URL, params={"document": "a"}).json()
    third = db.get(Chunk, (_collection(db).id, before["items"][2]["chunk_id"]))
    assert third is not None
    make_embedding(db, third, [0.5] * DIMENSIONS, model="hashing", version=2)

    after = api.get(URL, params={"document": "a"}).json()

    assert (before["active_version"], after["active_version"]) == (2, 2)
    assert [c["embedded"] for c in before["items"]] == [False] * 4
    assert [c["embedded"] for c in after["items"]] == [False, False, True, False]


def _collection(db: Session) -> Collection:
    return db.query(Collection).filter_by(name="docs").one()


def test_a_markdown_heading_path_and_a_chunk_without_vector(api: TestClient, db: Session) -> None:
    collection = _collection(db)
    document = Document(collection_id=collection.id, external_id="guide.md", title="Guide", content="x" * 40,
                        content_type="text/markdown", status="processing")  # fmt: skip
    db.add(document)
    db.flush()
    first = make_chunk(db, document, text="x" * 20, char_end=20, title="Guide > Install",
                       metadata_={"headings": ["Install"]})  # fmt: skip
    make_chunk(db, document, text="x" * 20, ordinal=1, char_start=20, char_end=40, metadata_={"headings": "odd"})
    make_embedding(db, first, [0.5] * DIMENSIONS, model="hashing")

    body = api.get(URL, params={"document": "guide.md"}).json()

    assert body["status"] == "processing"
    assert [(c["title"], c["headings"], c["embedded"]) for c in body["items"]] == [
        ("Guide > Install", ["Install"], True), ("Guide", [], False),
    ]  # fmt: skip
    assert body["items"][1]["metadata"] == {"headings": "odd"}


def test_a_document_without_chunks_yet_is_an_empty_page(api: TestClient) -> None:
    api.post("/v1/collections/docs/documents", json={"external_id": "queued", "content": "Not chunked yet."})

    body = api.get(URL, params={"document": "queued"}).json()

    assert (body["status"], body["items"], body["next_cursor"]) == ("pending", [], None)


def test_unknown_collection_or_document_is_404(api: TestClient) -> None:
    gone = api.get("/v1/collections/nope/chunks", params={"document": "a"})
    missing = api.get(URL, params={"document": "nope"})

    assert gone.status_code == missing.status_code == 404
    assert gone.json() == {"error": {"code": "not_found", "message": "no collection named 'nope'"}}
    assert missing.json() == {"error": {"code": "not_found", "message": "no document 'nope' in collection 'docs'"}}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "query.document"),
        ({"document": ""}, "query.document"),
        ({"document": "a", "limit": 0}, "query.limit"),
        ({"document": "a", "limit": 1001}, "query.limit"),
        ({"document": "a", "text_chars": -1}, "query.text_chars"),
        ({"document": "a", "cursor": "not-a-cursor"}, "cursor"),
        ({"document": "a\x00"}, "query.document"),
    ],
)
def test_bad_parameters_are_422_naming_them(api: TestClient, params: dict[str, Any], field: str) -> None:
    api.post("/v1/collections/docs/documents", json=given("a", PARTS))

    response = api.get(URL, params=params)

    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_chunks_the_worker_cut_from_markdown(fresh_db_url: str) -> None:
    settings = Settings(database_url=fresh_db_url, worker_poll_seconds=30)
    engine = make_engine(settings, "test")
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            chunking = {"strategy": "markdown", "size": 16, "overlap": 0}
            body = {"name": "docs", "embedding_provider": "hashing", "dimensions": DIMENSIONS, "chunking": chunking}
            assert client.post("/v1/collections", json=body).status_code == 201
            content = "# Guide\n\nIntro words here.\n\n## Install\n\nRun the installer and wait.\n"
            document = {"external_id": "guide.md", "content": content, "content_type": "text/markdown"}
            assert client.post("/v1/collections/docs/documents", json=document).status_code == 202
            assert Worker(settings, engine).run_once() == 1

            items = client.get(URL, params={"document": "guide.md"}).json()["items"]

        assert [c["headings"] for c in items] == [["Guide"], ["Guide", "Install"]]
        assert [c["title"] for c in items] == ["Guide", "Guide > Install"]
        assert all(c["embedded"] and content[c["char_start"] : c["char_end"]] == c["text"] for c in items)
        assert all(c["token_count"] > 0 for c in items)
    finally:
        engine.dispose()
