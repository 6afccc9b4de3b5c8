"""GET /docs works offline: the page and everything it loads come from the API itself."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.main import create_app
from app.config import Settings

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


def _page_urls(html: str) -> list[str]:
    """Every URL the Swagger UI page loads: stylesheet, icon, script, and the OpenAPI document."""
    return re.findall(r'(?:href|src)="([^"]*)"', html) + re.findall(r"\burl: '([^']*)'", html)


def test_docs_page_loads_only_local_files(client: TestClient) -> None:
    page = client.get("/docs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "//" not in page.text  # no http://, https:// or protocol-relative URL anywhere in the page
    *assets, openapi_url = _page_urls(page.text)
    assert len(assets) == 3
    for url in [*assets, openapi_url]:
        assert url.startswith("/"), url
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        expected = CONTENT_TYPES[url[url.rindex(".") :]]
        assert response.headers["content-type"].split(";")[0] == expected, url
        assert len(response.content) > 1000, url
    assert "SwaggerUIBundle" in client.get(next(u for u in assets if u.endswith(".js"))).text
    stylesheet = client.get(next(u for u in assets if u.endswith(".css"))).text
    assert "@import" not in stylesheet
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", stylesheet)

    openapi = client.get(openapi_url)
    assert openapi.status_code == 200
    assert openapi.headers["content-type"] == "application/json"
    assert openapi.json()["openapi"].startswith("3.")
    assert "/healthz" in openapi.json()["paths"]


def test_docs_page_does_not_ask_the_online_validator(client: TestClient) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text


def test_redoc_is_off_and_only_swagger_ui_files_are_served(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 404
    for name in ("redoc.standalone.js", "..%2F__init__.py", "consts.py"):
        response = client.get(f"/docs/assets/{name}")
        assert response.status_code == 404, name
        assert response.json()["error"]["code"] == "not_found"


def test_every_operation_that_reads_a_body_documents_it(client: TestClient) -> None:
    """Routes that read their body themselves declare it too, so clients and the fuzzer (tests/fuzz/) send one."""
    paths = client.get("/openapi.json").json()["paths"]
    bodies = {
        (method.upper(), path): sorted(operation["requestBody"]["content"])
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }

    assert bodies[("POST", "/v1/datasets/{name}/examples")] == ["application/json"]
    assert bodies[("POST", "/v1/datasets/{name}/import")] == [
        "application/json", "application/x-ndjson", "multipart/form-data", "text/csv",
    ]  # fmt: skip
    assert bodies[("POST", "/v1/collections/{name}/documents")] == ["application/json", "multipart/form-data"]
    posts = {(m.upper(), p) for p, ops in paths.items() for m in ops if m in ("post", "patch", "put")}
    assert posts - set(bodies) == set(), "a write without a documented body"
