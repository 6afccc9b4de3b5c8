"""A collection's console page over HTTP (open loopback mode): the create form, documents by status and page,
uploads with each file's outcome, retry, and the live counts stream."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.config import Settings
from app.console.pages.collections import PAGE_SIZE
from app.db.models import Document

HTML = {"Accept": "text/html"}
CORRUPT_PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n%% torn off"


def csrf(api: TestClient) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', api.get("/console", headers=HTML).text)
    assert found is not None
    return found.group(1)


@pytest.fixture
def handbook(api: TestClient) -> str:
    body = {"name": "handbook", "embedding_provider": "hashing", "dimensions": 8}
    assert api.post("/v1/collections", json=body).status_code == 201
    return "handbook"


def documents_in(html: str) -> list[str]:
    return re.findall(r'<tr data-document="([^"]+)">', html)


def test_the_create_form_makes_a_collection_and_goes_to_its_page(api: TestClient) -> None:
    form = {"name": "notes", "embedding_provider": "hashing", "dimensions": "16", "csrf_token": csrf(api)}

    response = api.post("/console/collections", data=form, headers=HTML, follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "http://testserver/console/collections/notes"
    assert api.get("/v1/collections/notes").json()["dimensions"] == 16


def test_the_create_form_shows_each_problem_by_its_field_and_keeps_what_was_typed(api: TestClient) -> None:
    form = {"name": "no spaces", "embedding_provider": "hashing", "dimensions": "0", "csrf_token": csrf(api)}

    response = api.post("/console/collections", data=form, headers=HTML)

    assert response.status_code == 422
    assert 'id="new-name" name="name" required value="no spaces" aria-invalid="true"' in response.text
    assert '<p class="problem" id="problem-name">String should match pattern' in response.text
    assert '<p class="problem" id="problem-dimensions">Input should be greater than or equal to 1' in response.text
    assert api.get("/v1/collections/no spaces").status_code == 404


def test_documents_are_listed_by_status_a_page_at_a_time(api: TestClient, handbook: str, db: Session) -> None:
    docs = [{"external_id": f"doc-{i:03}", "content": f"Text number {i}."} for i in range(PAGE_SIZE + 3)]
    assert api.post(f"/v1/collections/{handbook}/documents", json=docs).status_code == 202
    db.execute(update(Document).where(Document.external_id == "doc-007").values(status="failed", error="boom"))

    first = api.get(f"/console/collections/{handbook}", headers=HTML)
    cursor = re.search(r'cursor=([^"]+)" rel="next"', first.text)
    assert cursor is not None
    second = api.get(f"/console/collections/{handbook}?cursor={cursor.group(1)}", headers=HTML)
    failed = api.get(f"/console/collections/{handbook}?status=failed", headers=HTML)
    part = api.get(f"/console/collections/{handbook}?status=failed&part=documents", headers=HTML)

    assert documents_in(first.text) == [f"doc-{i:03}" for i in range(PAGE_SIZE)]
    assert documents_in(second.text) == [f"doc-{i:03}" for i in range(PAGE_SIZE, PAGE_SIZE + 3)]
    assert documents_in(failed.text) == ["doc-007"]
    assert '<span class="problem">boom</span>' in failed.text
    assert 'aria-label="Retry doc-007"' in failed.text
    assert part.text.lstrip().startswith('<div class="scroll">')  # the table alone, for the live update
    assert documents_in(part.text) == ["doc-007"]
    assert '<span class="count">1</span> failed' in first.text
    assert f'<span class="count">{PAGE_SIZE + 2}</span> pending' in first.text


def test_an_upload_lists_each_file_s_outcome_and_stores_the_readable_ones(api: TestClient, handbook: str) -> None:
    files = [
        ("files", ("leave.md", b"# Leave\n\nTwenty days a year.", "text/markdown")),
        ("files", ("scan.pdf", CORRUPT_PDF, "application/pdf")),
    ]
    headers = {"X-CSRF-Token": csrf(api), "Accept": "application/json"}

    response = api.post(f"/console/collections/{handbook}/documents", files=files, headers=headers)

    assert response.status_code == 200
    stored, refused = response.json()["documents"]
    assert stored == {"external_id": "leave.md", "status": "pending", "version": 1, "action": "created"}
    assert refused["file"] == "scan.pdf"
    assert refused["error"]["message"].startswith("scan.pdf is damaged or not a PDF")
    listed = api.get(f"/v1/collections/{handbook}/documents").json()["items"]
    assert [d["external_id"] for d in listed] == ["leave.md"]


def test_an_upload_from_a_plain_form_comes_back_as_the_page_with_the_outcomes(api: TestClient, handbook: str) -> None:
    response = api.post(
        f"/console/collections/{handbook}/documents",
        files=[("files", ("scan.pdf", CORRUPT_PDF, "application/pdf"))],
        data={"csrf_token": csrf(api)},
        headers=HTML,
    )

    assert response.status_code == 200
    assert '<li class="problem"><strong>scan.pdf</strong>: scan.pdf is damaged or not a PDF' in response.text


def test_retry_puts_a_failed_document_back_in_the_queue(api: TestClient, handbook: str, db: Session) -> None:
    api.post(f"/v1/collections/{handbook}/documents", json={"external_id": "a", "content": "Alpha."})
    db.execute(update(Document).where(Document.external_id == "a").values(status="failed", error="timeout"))

    response = api.post(
        f"/console/collections/{handbook}/retry",
        data={"external_id": "a", "csrf_token": csrf(api)},
        headers=HTML,
        follow_redirects=False,
    )

    assert response.status_code == 303
    document = api.get(f"/v1/collections/{handbook}/documents/a").json()
    assert (document["status"], document["error"]) == ("pending", None)


def test_the_live_stream_sends_the_counts_by_status(fresh_db_url: str) -> None:
    settings = Settings(database_url=fresh_db_url, console_stream_seconds=0.3)
    with TestClient(create_app(settings)) as api:  # the stream reads on connections of its own: committed data
        body = {"name": "handbook", "embedding_provider": "hashing", "dimensions": 8}
        api.post("/v1/collections", json=body)
        api.post("/v1/collections/handbook/documents", json={"external_id": "a", "content": "Alpha."})

        stream = api.get("/console/collections/handbook/events")

    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [block for block in stream.text.split("\n\n") if block.startswith("event: counts")]
    assert len(events) == 1  # sent at once, and not again while nothing changes
    assert json.loads(events[0].split("data: ", 1)[1]) == {"failed": 0, "pending": 1, "processing": 0, "ready": 0}


def test_an_unknown_status_or_collection_is_a_page_that_says_so(api: TestClient, handbook: str) -> None:
    status = api.get(f"/console/collections/{handbook}?status=lost", headers=HTML)
    missing = api.get("/console/collections/nowhere", headers=HTML)

    assert status.status_code == 422
    assert "<code>status</code>: must be one of pending, processing, ready, failed" in status.text
    assert missing.status_code == 404
    assert "no collection named &#39;nowhere&#39;" in missing.text.lower() or "nowhere" in missing.text


def test_a_nul_in_any_form_field_is_a_422_naming_the_field(api: TestClient, handbook: str) -> None:
    """Found in review: a NUL in a form field reached PostgreSQL (which refuses it in text), a 500."""
    token = csrf(api)

    retry = api.post(f"/console/collections/{handbook}/retry", data={"external_id": "\x00", "csrf_token": token},
                     headers=HTML)  # fmt: skip
    answer = api.post("/console/collections/handbook/answer", data={"question": "why\x00", "csrf_token": token},
                      headers={"Accept": "text/event-stream"})  # fmt: skip

    assert retry.status_code == 422
    assert "<code>external_id</code>: contains a NUL character" in retry.text
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"] == "question"
