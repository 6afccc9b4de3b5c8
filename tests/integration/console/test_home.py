"""The console's home page and `/`, over HTTP: what a person sees, the headers that keep the page to the app's own
files, and the files themselves."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.console.render import CSP


def test_the_root_page_links_the_console_and_the_api_docs(api: TestClient) -> None:
    response = api.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="http://testserver/console"' in response.text
    assert 'href="/docs"' in response.text


def test_the_home_page_lists_collections_with_documents_by_status_and_datasets(api: TestClient) -> None:
    assert api.post("/v1/collections", json={"name": "handbook", "embedding_provider": "hashing",
                                             "dimensions": 8}).status_code == 201  # fmt: skip
    api.post("/v1/collections/handbook/documents", json={"external_id": "a", "content": "Some text."})
    assert api.post("/v1/datasets", json={"name": "support", "task": "classification"}).status_code == 201

    response = api.get("/console")

    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP
    html = response.text
    assert '<th scope="row"><a href="http://testserver/console/collections/handbook">handbook</a></th>' in html
    assert "hashing/hashing · 8d cosine" in html
    assert '<th scope="row"><a href="http://testserver/console/datasets/support">support</a></th>' in html
    assert html.count("<script") == html.count('<script src="http://testserver/console/static/console.js"') == 1


def test_the_style_sheet_is_the_app_s_own_and_nothing_else_is_served(api: TestClient) -> None:
    css = api.get("/console/static/console.css")
    other = api.get("/console/static/..%2Fpyproject.toml")

    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert ":focus-visible" in css.text
    assert other.status_code == 404
