"""The harness itself, on a page the app serves today: the API docs load whole in Chromium with the network cut off
from everything but the server, so every asset they need is the app's own."""

from __future__ import annotations

from tests.browser.conftest import Offline


def test_the_api_docs_render_with_nothing_but_the_server(offline: Offline) -> None:
    response = offline.goto("/docs")

    offline.page.wait_for_selector(".swagger-ui .info .title")
    operations = offline.page.locator(".opblock").count()
    shot = offline.screenshot("api-docs")

    assert response is not None
    assert response.status == 200
    assert "Memora" in offline.page.locator(".swagger-ui .info .title").inner_text()
    assert operations > 50  # every route of the API is listed
    assert offline.refused == []
    assert shot.stat().st_size > 10_000


def test_a_request_to_elsewhere_is_refused_and_recorded(offline: Offline) -> None:
    offline.goto("/docs")

    outcome = offline.page.evaluate(
        "() => fetch('https://cdn.example.com/x.js').then(() => 'reached', () => 'refused')"
    )

    assert outcome == "refused"
    assert offline.refused == ["https://cdn.example.com/x.js"]
