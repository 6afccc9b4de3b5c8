"""A document's console page: its facts, and its chunks with offsets, headings and whether each is embedded."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.console.pages.documents import PAGE_SIZE
from app.embeddings.hashing import HashingEmbedder

HTML = {"Accept": "text/html"}


def chunk(text: str, headings: list[str]) -> dict[str, object]:
    """A chunk given with its vector (the service finds its offsets in the content)."""
    return {"text": text, "embedding": HashingEmbedder(8).embed([text])[0].tolist(), "metadata": {"headings": headings}}


def test_a_document_page_shows_its_chunks_in_order_with_offsets_headings_and_vectors(api: TestClient) -> None:
    api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 8})
    content = "Leave. Twenty days <a year>."
    chunks = [chunk("Leave.", ["Policy"]), chunk("Twenty days <a year>.", ["Policy", "Leave"])]
    api.post("/v1/collections/kb/documents", json={"external_id": "policy/leave", "content": content, "chunks": chunks})

    response = api.get("/console/collections/kb/document?id=policy/leave", headers=HTML)

    assert response.status_code == 200
    rows = re.findall(r'<tr id="chunk-(\d+)" data-chunk="\d+">(.*?)</tr>', response.text, re.S)
    assert [ordinal for ordinal, _ in rows] == ["0", "1"]
    assert "7\u201328" in rows[1][1]  # an en dash between the offsets
    assert "Policy \u203a Leave" in rows[1][1]
    assert "Twenty days &lt;a year&gt;." in rows[1][1]  # escaped
    assert rows[1][1].count("<td>yes</td>") == 1
    assert '<span class="status status-ready">ready</span>' in response.text


def test_a_citation_link_starts_the_page_at_its_chunk(api: TestClient) -> None:
    api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 8})
    words = [f"w{i:03}" for i in range(PAGE_SIZE + 20)]
    chunks = [chunk(word, []) for word in words]
    api.post("/v1/collections/kb/documents", json={"external_id": "long", "content": " ".join(words), "chunks": chunks})

    first = api.get("/console/collections/kb/document?id=long", headers=HTML)
    cited = api.get(f"/console/collections/kb/document?id=long&at={PAGE_SIZE + 5}", headers=HTML)

    assert re.findall(r'<tr id="chunk-(\d+)"', first.text)[-1] == str(PAGE_SIZE - 1)
    assert 'rel="next"' in first.text
    assert re.findall(r'<tr id="chunk-(\d+)"', cited.text)[0] == str(PAGE_SIZE + 5)
    assert "First chunks" in cited.text


def test_an_unknown_document_is_a_404_page(api: TestClient) -> None:
    api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 8})

    response = api.get("/console/collections/kb/document?id=ghost", headers=HTML)

    assert response.status_code == 404
    assert "no document &#39;ghost&#39; in collection &#39;kb&#39;" in response.text
