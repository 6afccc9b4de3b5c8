"""/v1/collections/{name}/documents over HTTP: JSON and file uploads, upserts, listing and limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.query import Query
from tests.conftest import app_on

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"
URL = "/v1/collections/docs/documents"


@pytest.fixture(autouse=True)
def collection(api: TestClient) -> None:
    assert api.post("/v1/collections", json={"name": "docs", "embedding_provider": "hashing"}).status_code == 201


def test_one_json_document_is_accepted_at_once(api: TestClient) -> None:
    response = api.post(URL, json={"external_id": "a", "content": "Alpha text.", "metadata": {"team": "hr"}})

    assert response.status_code == 202
    assert response.json()["documents"] == [
        {"external_id": "a", "status": "pending", "version": 1, "action": "created", "file": None, "error": None}
    ]


def test_upsert_same_content_is_a_no_op_and_changed_content_a_new_version(api: TestClient) -> None:
    api.post(URL, json={"external_id": "a", "content": "Alpha text."})

    same = api.post(URL, json={"external_id": "a", "content": "Alpha text."}).json()["documents"][0]
    changed = api.post(URL, json={"external_id": "a", "content": "Alpha text, edited."}).json()["documents"][0]

    assert (same["action"], same["version"]) == ("unchanged", 1)
    assert (changed["action"], changed["version"], changed["status"]) == ("updated", 2, "pending")


def test_an_array_and_documents_without_external_id(api: TestClient) -> None:
    response = api.post(URL, json=[{"content": "One."}, {"content": "Two.", "title": "Second"}])
    again = api.post(URL, json=[{"content": "One."}])

    ids = [doc["external_id"] for doc in response.json()["documents"]]
    assert all(key.startswith("sha256:") for key in ids)
    assert again.json()["documents"][0] == response.json()["documents"][0] | {"action": "unchanged"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "   "}, "documents[0].content"),
        ({"content": ""}, "body.content"),
        ({"content": "x", "content_type": "image/png"}, "body.content_type"),
        ({"content": "x", "metadata": [1]}, "body.metadata"),
        ([{"external_id": "k", "content": "x"}, {"external_id": "k", "content": "y"}], "documents[1].external_id"),
        ([{"content": "x"}, {"content": 5}], "body[1].content"),
        ("not json", "body"),
    ],
)
def test_bad_documents_are_422_naming_the_field(api: TestClient, body: object, field: str) -> None:
    if isinstance(body, str):
        response = api.post(URL, content=body.encode(), headers={"content-type": "application/json"})
    else:
        response = api.post(URL, json=body)

    assert response.status_code == 422
    fields = [problem["field"] for problem in response.json()["error"]["details"]]
    assert any(f.startswith(field) for f in fields), fields
    assert api.get(URL).json()["items"] == []


def test_file_uploads_of_every_kind(api: TestClient) -> None:
    files = [
        ("files", (path.name, path.read_bytes())) for path in sorted(FIXTURES.iterdir()) if "corrupt" not in path.name
    ]

    response = api.post(URL, files=files)

    assert response.status_code == 202, response.text
    results = response.json()["documents"]
    assert all(result["error"] is None for result in results)
    listed = {item["external_id"]: item for item in api.get(URL).json()["items"]}
    kinds = {item["content_type"] for item in listed.values()}
    assert kinds == {"text/plain", "text/markdown", "text/html", "application/pdf"}
    assert all(item["source"] for item in listed.values())


def test_a_corrupt_pdf_fails_alone(api: TestClient) -> None:
    good = [("files", (f"note-{i}.txt", f"Note number {i}.".encode())) for i in range(5)]
    corrupt = [("files", ("broken.pdf", (FIXTURES / "corrupt.pdf").read_bytes()))]

    response = api.post(URL, files=good + corrupt)

    assert response.status_code == 202
    results = response.json()["documents"]
    failed = [r for r in results if r["error"]]
    assert [r["file"] for r in failed] == ["broken.pdf"]
    assert "broken.pdf" in failed[0]["error"]["message"]
    assert len(api.get(URL).json()["items"]) == 5


def test_only_bad_files_take_the_status_of_the_problem(api: TestClient) -> None:
    unsupported = api.post(URL, files=[("files", ("tool.exe", b"MZ..."))])
    corrupt = api.post(URL, files=[("files", ("broken.pdf", (FIXTURES / "corrupt.pdf").read_bytes()))])

    assert unsupported.status_code == 415
    assert "tool.exe" in unsupported.json()["error"]["message"]
    assert corrupt.status_code == 422


def test_other_content_types_are_415(api: TestClient) -> None:
    response = api.post(URL, content=b"a,b\n1,2\n", headers={"content-type": "text/csv"})

    assert response.status_code == 415


def test_unknown_collection_is_404(api: TestClient) -> None:
    assert api.post("/v1/collections/nope/documents", json={"content": "x"}).status_code == 404
    assert api.get("/v1/collections/nope/documents").status_code == 404


def test_limits_are_413(settings: Settings, engine: Engine, db: Session) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 2048, "max_documents_per_request": 3})
    app = app_on(db, small, engine)
    with TestClient(app) as client:
        client.post("/v1/collections", json={"name": "docs", "embedding_provider": "hashing"})
        too_big = client.post(URL, json={"content": "x" * 5000})
        too_many = client.post(URL, json=[{"content": f"doc {i}"} for i in range(4)])
        big_file = client.post(URL, files=[("files", ("big.txt", b"y" * 5000))])

    assert [too_big.status_code, too_many.status_code, big_file.status_code] == [413, 413, 413]
    assert "limit" in too_big.json()["error"]["message"]


def test_list_pages_and_filters(api: TestClient) -> None:
    api.post(
        URL, json=[{"external_id": f"d{i}", "content": f"Doc {i}.", "metadata": {"even": i % 2 == 0}} for i in range(5)]
    )

    pages, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = api.get(URL, params=params).json()
        pages.append([item["external_id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    even = api.get(URL, params={"metadata": json.dumps({"even": True})}).json()["items"]
    pending = api.get(URL, params={"status": "pending"}).json()["items"]

    assert pages == [["d0", "d1"], ["d2", "d3"], ["d4"]]
    assert [item["external_id"] for item in even] == ["d0", "d2", "d4"]
    assert len(pending) == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [({"metadata": "{not json"}, "metadata"), ({"metadata": "[1]"}, "metadata"), ({"status": "odd"}, "status"),
     ({"cursor": "!!!"}, "cursor"), ({"limit": 0}, "query.limit")],
)  # fmt: skip
def test_bad_list_parameters_are_422(api: TestClient, params: dict[str, object], field: str) -> None:
    response = api.get(URL, params=params)

    assert response.status_code == 422
    assert field in response.json()["error"]["message"]


def test_get_and_delete_one(api: TestClient) -> None:
    api.post(URL, json={"external_id": "notes/a.md", "content": "# A\n\nText.", "content_type": "text/markdown"})

    found = api.get(f"{URL}/notes/a.md")
    deleted = api.delete(f"{URL}/notes/a.md")

    assert found.status_code == 200
    assert found.json()["content"] == "# A\n\nText."
    assert found.json()["chunk_count"] == 0
    assert deleted.status_code == 204
    assert api.get(f"{URL}/notes/a.md").status_code == 404
    assert api.delete(f"{URL}/notes/a.md").status_code == 404


def test_bring_your_own_chunks_and_vectors(api: TestClient, connection: Connection) -> None:
    dims = api.get("/v1/collections/docs").json()["dimensions"]
    content = "First part of the text. Second part of the text."
    chunks = [
        {"text": "First part of the text.", "embedding": [1.0] + [0.0] * (dims - 1)},
        {"text": "Second part of the text.", "embedding": [0.0, 1.0] + [0.0] * (dims - 2), "metadata": {"n": 2}},
    ]

    response = api.post(URL, json={"external_id": "own", "content": content, "chunks": chunks})

    assert response.json()["documents"][0]["status"] == "ready"
    rows = Query(
        "SELECT c.text, c.char_start, c.char_end, c.metadata, e.model, vector_dims(e.embedding) "
        "FROM memora.chunk c JOIN memora.embedding e ON e.chunk_id = c.id ORDER BY c.ordinal"
    ).run(connection)
    assert [tuple(row) for row in rows] == [
        ("First part of the text.", 0, 23, {}, "hashing", dims),
        ("Second part of the text.", 24, 48, {"n": 2}, "hashing", dims),
    ]


@pytest.mark.parametrize(
    ("chunk", "field"),
    [
        ({"text": "First", "embedding": [1.0, 2.0]}, "documents[0].chunks[0].embedding"),
        ({"text": "not in there", "embedding": [1.0]}, "documents[0].chunks[0].text"),
        ({"text": "First", "embedding": []}, "body.chunks[0].embedding"),
    ],
)
def test_bad_given_chunks_are_422(api: TestClient, chunk: dict[str, object], field: str) -> None:
    dims = api.get("/v1/collections/docs").json()["dimensions"]
    if chunk["text"] == "not in there":
        chunk = chunk | {"embedding": [0.5] * dims}

    response = api.post(URL, json={"external_id": "own", "content": "First part.", "chunks": [chunk]})

    assert response.status_code == 422
    assert field in [problem["field"] for problem in response.json()["error"]["details"]]
    assert api.get(URL).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "nul \u0000 inside"}, "documents[0].content"),
        ({"content": "x", "title": "a\u0000b"}, "documents[0].title"),
        ({"content": "x", "metadata": {"k": "\u0000"}}, "documents[0].metadata"),
        ({"content": "x", "external_id": "k" * 2000}, "body.external_id"),
        ({"content": "x", "chunks": []}, "body.chunks"),
    ],
)
def test_values_postgres_cannot_store_are_422(api: TestClient, body: dict[str, object], field: str) -> None:
    response = api.post(URL, json=body)

    assert response.status_code == 422, response.text
    assert field in [problem["field"] for problem in response.json()["error"]["details"]]


def test_nan_and_oversized_floats_are_422(api: TestClient) -> None:
    dims = api.get("/v1/collections/docs").json()["dimensions"]
    nan = b'{"content": "x", "metadata": {"score": NaN}}'
    huge = {"content": "First.", "chunks": [{"text": "First.", "embedding": [1e39] * dims}]}

    nan_response = api.post(URL, content=nan, headers={"content-type": "application/json"})
    huge_response = api.post(URL, json=huge)
    nan_filter = api.get(URL, params={"metadata": '{"score": NaN}'})
    big_cursor = api.get(URL, params={"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk="})

    assert nan_response.status_code == 422
    assert "NaN" in nan_response.json()["error"]["message"]
    assert huge_response.status_code == 422
    assert "float32" in huge_response.text
    assert nan_filter.status_code == 422
    assert big_cursor.status_code == 422


def test_collection_text_postgres_cannot_store_is_422(api: TestClient) -> None:
    response = api.post("/v1/collections", json={"name": "x", "embedding_provider": "hashing", "description": "\u0000"})

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "body.description"


def test_several_documents_with_given_vectors_in_one_request(api: TestClient, connection: Connection) -> None:
    dims = api.get("/v1/collections/docs").json()["dimensions"]
    body = [
        {"external_id": f"own-{i}", "content": f"Alpha {i}. Beta {i}.", "chunks": [
            {"text": f"Alpha {i}.", "embedding": [0.1 * (i + 1)] * dims},
            {"text": f"Beta {i}.", "embedding": [0.2 * (i + 1)] * dims},
        ]}
        for i in range(3)
    ]  # fmt: skip

    response = api.post(URL, json=body)

    assert [doc["status"] for doc in response.json()["documents"]] == ["ready"] * 3
    rows = Query(
        "SELECT d.external_id, c.ordinal, c.text FROM memora.chunk c "
        "JOIN memora.document d ON d.id = c.document_id JOIN memora.embedding e ON e.chunk_id = c.id "
        "ORDER BY d.external_id, c.ordinal"
    ).run(connection)
    assert [tuple(row) for row in rows] == [
        (f"own-{i}", ordinal, f"{word} {i}.") for i in range(3) for ordinal, word in enumerate(("Alpha", "Beta"))
    ]
