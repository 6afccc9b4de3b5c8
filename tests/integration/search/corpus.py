"""The corpus the search API tests share: four documents whose text and vector ranks are known, and helpers."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

URL = "/v1/collections/kb/search"
QUERY = [1.0, 0.0, 0.0, 0.0]

# A corpus designed for the query "aardvark" with the vector QUERY (cosine, 4 dimensions):
#   lexical   says aardvark twice, points away from QUERY         text rank 1, vector rank 4
#   both      says aardvark once, points almost along QUERY       text rank 2, vector rank 2
#   semantic  no aardvark, points along QUERY                     no text rank, vector rank 1
#   neither   no aardvark, orthogonal to QUERY                    no text rank, vector rank 3
CORPUS: list[dict[str, Any]] = [
    {
        "external_id": "lexical",
        "title": "Termites",
        "content": "The aardvark digs, and the aardvark eats termites at night.",
        "metadata": {"year": 2019, "source": "pubmed", "tags": ["zoology", "africa"], "lab": {"city": "Oslo"}},
        "vector": [-1.0, 0.0, 0.0, 0.0],
        "page": 1,
    },
    {
        "external_id": "both",
        "title": "Mammals",
        "content": "An aardvark is a nocturnal mammal.",
        "metadata": {"year": 2021, "source": "arxiv", "tags": ["zoology"], "reviewed": True},
        "vector": [0.9, 0.1, 0.0, 0.0],
        "page": 2,
    },
    {
        "external_id": "semantic",
        "title": "Insects",
        "content": "Nocturnal insectivores of the savanna.",
        "metadata": {"year": 2023, "source": "pubmed", "tags": ["africa"]},
        "vector": [1.0, 0.0, 0.0, 0.0],
        "page": 3,
    },
    {
        "external_id": "neither",
        "title": "Markets",
        "content": "Stock markets fell sharply today.",
        "metadata": {"year": 2020, "source": "news"},
        "vector": [0.0, 1.0, 0.0, 0.0],
        "page": 3,
    },
]


def document(item: dict[str, Any]) -> dict[str, Any]:
    """A document of CORPUS as the documents API takes it: one chunk, its vector, its page."""
    chunk = {"text": item["content"], "embedding": item["vector"], "metadata": {"page": item["page"]}}
    fields = {key: item[key] for key in ("external_id", "title", "content", "metadata")}
    return fields | {"chunks": [chunk]}


def store_corpus(api: TestClient) -> None:
    """Collection kb (hashing provider, 4 dimensions) with CORPUS stored, each document ready."""
    created = api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 4})
    assert created.status_code == 201, created.text
    stored = api.post("/v1/collections/kb/documents", json=[document(item) for item in CORPUS])
    assert [doc["status"] for doc in stored.json()["documents"]] == ["ready"] * len(CORPUS)


def search(api: TestClient, **body: Any) -> Any:
    response = api.post(URL, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def ids(answer: Any) -> list[str]:
    return [result["external_id"] for result in answer["results"]]
