"""A body that is not JSON gets a 422 naming the body and the place of the mistake as line and column."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings

# The mistake is on line 3; "café" makes the column differ from the byte offset within the line.
MALFORMED = '{\n  "name": "notes",\n  "description": "café" "x"\n}\n'
REASON = "invalid JSON at line 3, column 25: Expecting ',' delimiter"

# Every endpoint that reads a JSON body: FastAPI parses most of them; documents and examples parse their own.
ENDPOINTS = [
    ("post", "/v1/collections"),
    ("patch", "/v1/collections/{name}"),
    ("post", "/v1/collections/{name}/documents"),
    ("post", "/v1/collections/{name}/documents/retry"),
    ("post", "/v1/collections/{name}/search"),
    ("post", "/v1/collections/{name}/answer"),
    ("post", "/v1/collections/{name}/embeddings"),
    ("post", "/v1/collections/{name}/embeddings/{number}/activate"),
    ("patch", "/v1/collections/{name}/embeddings/{number}"),
    ("post", "/v1/collections/{name}/embeddings/train"),
    ("post", "/v1/collections/{name}/feedback"),
    ("post", "/v1/datasets"),
    ("post", "/v1/datasets/{name}/examples"),
    ("post", "/v1/datasets/{name}/split"),
    ("post", "/v1/datasets/{name}/dedup"),
    ("post", "/v1/datasets/{name}/duplicates/resolve"),
    ("post", "/v1/datasets/{name}/snapshots"),
    ("post", "/v1/keys"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_malformed_json_names_line_and_column(api: TestClient, method: str, path: str) -> None:
    response = api.request(
        method,
        path.format(name="notes", number=1),
        content=MALFORMED.encode(),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 422, response.text
    assert response.json() == {
        "error": {
            "code": "invalid_input",
            "message": f"invalid request: body: {REASON}",
            "details": [{"field": "body", "reason": REASON, "line": 3, "column": 25}],
        }
    }


def test_every_json_body_endpoint_is_tried() -> None:
    openapi = create_app(Settings(database_url="postgresql://unused@127.0.0.1/unused")).openapi()
    json_bodies = {
        (method, path)
        for path, operations in openapi["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    }

    # An import's body is a file (a SQuAD JSON among others): its report names what is wrong with it, record by record.
    assert json_bodies - {("post", "/v1/datasets/{name}/import")} <= set(ENDPOINTS)


def test_a_mistake_on_the_first_line_is_column_of_that_line(api: TestClient) -> None:
    response = api.post("/v1/collections", content=b'{"name": "notes",}', headers={"content-type": "application/json"})

    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert (detail["field"], detail["line"], detail["column"]) == ("body", 1, 18)
    assert detail["reason"].startswith("invalid JSON at line 1, column 18: ")  # the words vary with Python's version


def test_a_valid_body_that_fails_validation_still_names_its_field(api: TestClient) -> None:
    response = api.post("/v1/collections", json={"name": "notes", "metric": "manhattan"})

    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["body.metric"]
