"""Journey 5, and what every page owes a person: starting at /console, every console page reached by following links
is loaded in Chromium with the network cut off from everything but the server. None may ask for anything
elsewhere, log a script error or be refused by its own Content-Security-Policy; every form control has a name a
screen reader says; nothing is wider than a phone's screen; and Tab reaches the page's controls."""

from __future__ import annotations

from collections import deque
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from app.embeddings.hashing import HashingEmbedder
from tests.browser.conftest import open_offline

# Links a crawl does not follow: downloads, and pages that differ from one already seen only in a query.
SKIPPED = ("/export", "/console/static/")
MAX_PAGES = 60
UNNAMED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter(e => e.type !== "hidden" && !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
               && !e.getAttribute("aria-labelledby") && !(e.tagName === "BUTTON" && e.textContent.trim()))
  .map(e => e.outerHTML.slice(0, 120))"""
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def seed(server: str) -> None:
    """A collection with a document of three chunks, and a dataset with examples, two snapshots and a split."""
    embedder = HashingEmbedder(8)
    paragraphs = ["Leave is twenty days a year.", "Parental leave is twenty weeks.", "Ask your manager first."]
    chunks = [{"text": p, "embedding": embedder.embed([p])[0].tolist()} for p in paragraphs]
    with httpx.Client(base_url=server) as client:
        client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 8})
        document = {"external_id": "policy", "content": "\n\n".join(paragraphs), "chunks": chunks}
        assert client.post("/v1/collections/kb/documents", json=document).status_code == 202
        client.post("/v1/datasets", json={"name": "support", "task": "classification"})
        examples = [{"text": f"question {i} about {'billing' if i % 2 else 'login'}", "label": "billing"
                     if i % 2 else "account"} for i in range(20)]  # fmt: skip
        assert client.post("/v1/datasets/support/examples", json=examples).status_code == 201
        client.post("/v1/datasets/support/snapshots", json={"name": "v1"})
        client.post("/v1/datasets/support/split", json={"seed": 3})
        client.post("/v1/datasets/support/snapshots", json={"name": "v2"})


def links(page: Any, base: str) -> list[str]:
    """The console pages PAGE links to, as paths with their query, fragment dropped."""
    found = []
    for href in page.eval_on_selector_all("a[href]", "anchors => anchors.map(a => a.getAttribute('href'))"):
        url = urlsplit(urljoin(page.url, href))
        path = url.path + (f"?{url.query}" if url.query else "")
        if (
            f"{url.scheme}://{url.netloc}" == base
            and url.path.startswith("/console")
            and not any(skipped in url.path for skipped in SKIPPED)
        ):
            found.append(path)
    return found


def test_journey_5_every_page_loads_offline_named_and_phone_wide(browser: Any, server: str) -> None:
    seed(server)
    context, offline = open_offline(browser, server, viewport={"width": 390, "height": 844})
    page = offline.page
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(f"{page.url}: {message.text}"))
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    queue, seen = deque(["/console"]), {"/console"}  # a path's first link only: its other queries are alike
    visited = []
    while queue and len(visited) < MAX_PAGES:
        path = queue.popleft()
        response = offline.goto(path)
        assert response.status == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"]
        visited.append(path)
        unnamed = page.evaluate(UNNAMED)
        assert unnamed == [], f"{path}: controls without a name: {unnamed}"
        assert page.evaluate(OVERFLOW) <= 0, f"{path} is wider than a phone"
        for link in links(page, server):
            if link.split("?")[0] not in seen:
                seen.add(link.split("?")[0])
                queue.append(link)
    offline.screenshot("journey-5-phone")

    reached = {path.split("?")[0] for path in visited}
    assert {"/console", "/console/collections/kb", "/console/collections/kb/search", "/console/collections/kb/answer",
            "/console/collections/kb/document", "/console/datasets/support",
            "/console/datasets/support/snapshots"} <= reached  # fmt: skip
    assert offline.refused == []
    assert problems == []
    context.close()


def test_the_keyboard_reaches_the_search_box_and_searches(browser: Any, server: str) -> None:
    seed(server)
    context, offline = open_offline(browser, server)
    page = offline.page
    offline.goto("/console/collections/kb/search")

    presses = 0
    while page.evaluate("document.activeElement.id") != "query" and presses < 12:
        page.keyboard.press("Tab")  # the skip link, the bar's links, the breadcrumb, then the query box
        presses += 1
    page.keyboard.type("parental leave")
    page.keyboard.press("Enter")
    page.locator('[data-column="a"] li[data-chunk]').first.wait_for()

    assert presses < 12
    assert page.locator('[data-column="a"] li[data-chunk]').count() == 3
    context.close()
