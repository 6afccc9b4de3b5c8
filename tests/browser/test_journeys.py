"""The console's journeys, as a person takes them in Chromium: each asserts what they would see, with the network
cut off from everything but the server, and leaves a screenshot of its last step."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.auth import keys
from app.auth.principal import Role
from app.db.embedded import bin_dir
from app.db.engine import make_engine
from app.embeddings.hashing import HashingEmbedder
from tests.browser.conftest import Offline, open_offline, settings_for
from tests.integration.rag.answer_support import chat_settings_for
from tests.integration.rag.answer_support import documents as rag_documents
from tests.live_server import serving
from tests.openai_server import OpenAIServer

GOOD = ("handbook.md", "text/markdown", b"# Leave\n\nStaff get twenty days of paid leave a year.\n")
CORRUPT = ("scan.pdf", "application/pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n%% torn off here")

# Drop files on an element as a person's drag and drop does: a DataTransfer holding them, then dragover and drop.
DROP = """([selector, files]) => {
  const target = document.querySelector(selector);
  const transfer = new DataTransfer();
  for (const [name, type, text] of files) transfer.items.add(new File([text], name, { type }));
  target.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  target.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""


def create_collection(offline: Offline, name: str, dimensions: int) -> Any:
    """Collection NAME (the hashing model) made with the home page's form; the page, now on the collection's."""
    page = offline.page
    offline.goto("/console")
    page.get_by_text("New collection").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Embedding provider").select_option("hashing")
    page.get_by_label("Dimensions").fill(str(dimensions))
    page.get_by_role("button", name="Create collection").click()
    page.wait_for_url(f"**/console/collections/{name}")
    return page


def test_journey_1_create_a_collection_drop_two_files_and_watch_them_without_reloading(offline: Offline) -> None:
    page = create_collection(offline, "handbook", 64)
    page.evaluate("window.stillThisPage = true")  # gone if anything reloads the page

    page.evaluate(DROP, ["form[data-upload]", [[n, t, b.decode("latin-1")] for n, t, b in (GOOD, CORRUPT)]])

    results = page.locator("#upload-results")
    results.get_by_text("scan.pdf: scan.pdf is damaged or not a PDF", exact=False).wait_for()
    row = page.locator('tr[data-document="handbook.md"]')
    row.locator(".status-ready").wait_for(timeout=30_000)
    page.locator('[data-status="ready"] .count').get_by_text("1", exact=True).wait_for()
    offline.screenshot("journey-1-ingestion")

    assert page.evaluate("window.stillThisPage") is True
    assert row.locator("td").nth(2).inner_text() == "1"  # its one chunk
    assert "handbook.md: created, pending" in results.inner_text()
    assert page.locator("#ingest-progress").evaluate("p => [p.value, p.max]") == [1, 1]
    assert offline.refused == []


def test_a_failed_document_shows_its_error_and_retries_from_its_row(offline: Offline, fresh_db_url: str) -> None:
    page = create_collection(offline, "notes", 16)
    page.get_by_label("Drop files here", exact=False).set_input_files(
        [{"name": "a.txt", "mimeType": "text/plain", "buffer": b"Alpha text."}]
    )
    page.get_by_role("button", name="Upload").click()
    page.locator('tr[data-document="a.txt"] .status-ready').wait_for(timeout=30_000)
    _fail(fresh_db_url, "notes", "a.txt", "the provider timed out")

    page.reload()
    row = page.locator('tr[data-document="a.txt"]')
    row.get_by_text("the provider timed out").wait_for()
    row.get_by_role("button", name="Retry a.txt").click()
    page.locator('tr[data-document="a.txt"] .status-ready').wait_for(timeout=30_000)

    assert page.get_by_role("button", name="Retry a.txt").count() == 0
    assert offline.refused == []


def _fail(database_url: str, collection: str, external_id: str, error: str) -> None:
    """Mark a document failed with ERROR, as the worker does when it gives up on one."""
    engine = make_engine(settings_for(database_url), "test")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE memora.document d SET status = 'failed', error = %s FROM memora.collection c "
                "WHERE c.id = d.collection_id AND c.name = %s AND d.external_id = %s",
                (error, collection, external_id),
            )
    finally:
        engine.dispose()


@pytest.fixture
def keyed(fresh_db_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The app with keys required, a collection with a document, and a key of each role: (base URL, secrets)."""
    settings = settings_for(fresh_db_url, auth="required")
    engine = make_engine(settings, "test")
    with Session(engine) as db:
        secrets = {role.name: keys.create(db, settings, f"{role.name}-key", role).secret for role in Role}
        db.commit()
    engine.dispose()
    app = create_app(settings, worker=True)
    with serving(app) as url:
        yield url, secrets


def test_journey_4_a_read_key_sees_no_write_controls_and_a_forced_write_is_refused(
    browser: Any, keyed: tuple[str, dict[str, str]]
) -> None:
    url, secrets = keyed
    admin = {"Authorization": f"Bearer {secrets['admin']}"}
    context, offline = open_offline(browser, url)
    page = offline.page
    created = page.request.post(
        f"{url}/v1/collections", data={"name": "handbook", "embedding_provider": "hashing", "dimensions": 8},
        headers=admin,
    )  # fmt: skip
    assert created.status == 201

    offline.goto("/console")
    page.wait_for_url("**/console/sign-in?next=%2Fconsole")
    page.get_by_label("API key").fill(secrets["read"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console")
    page.get_by_role("link", name="handbook").click()
    page.wait_for_url("**/console/collections/handbook")
    offline.screenshot("journey-4-read-key")

    assert page.get_by_text("Signed in (read)").is_visible()
    assert page.get_by_text("New collection").count() == 0
    assert page.locator("form[data-upload]").count() == 0
    assert page.get_by_role("button", name="Retry", exact=False).count() == 0
    forced = page.evaluate(
        """async () => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const body = new FormData();
            body.append("files", new File(["forced"], "forced.txt", { type: "text/plain" }));
            const response = await fetch("/console/collections/handbook/documents",
                { method: "POST", body, headers: { "X-CSRF-Token": token, Accept: "application/json" } });
            return [response.status, (await response.json()).error.code];
        }"""
    )
    assert forced == [403, "forbidden"]
    # The sign-in cookie is the console's alone: the API under /v1 does not take it.
    assert page.evaluate("fetch('/v1/collections').then(r => r.status)") == 401
    assert offline.refused == []
    context.close()


def test_journey_2_compare_two_fusions_and_run_the_copied_sql_in_psql(
    browser: Any, server: str, fresh_db_url: str
) -> None:
    _load(server, "kb", TEXTS)
    context, offline = open_offline(browser, server)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page = offline.page
    offline.goto("/console/collections/kb/search")
    page.get_by_role("searchbox", name="Query").fill("twenty weeks leave")
    page.get_by_label("Fusion").first.select_option("convex")
    page.get_by_role("button", name="Search").click()
    page.locator('[data-column="a"] li[data-chunk]').first.wait_for()

    page.get_by_label("Compare with a second column").check()
    page.locator("#b-fusion").select_option("rrf")
    page.get_by_role("button", name="Search").click()
    second = page.locator('[data-column="b"]')
    second.locator("li[data-chunk]").first.wait_for()
    second.get_by_role("button", name="Copy").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    offline.screenshot("journey-2-search")

    marks = second.locator(".mark").all_inner_texts()
    assert set(marks) - {"="}  # rrf moved something, and the page says by how much
    assert second.locator(".mark-up").first.get_attribute("aria-label").startswith("up ")
    shown = [int(i) for i in second.locator("li[data-chunk]").evaluate_all("items => items.map(i => i.dataset.chunk)")]
    assert _psql_chunk_ids(fresh_db_url, copied) == shown
    assert offline.refused == []
    context.close()


TEXTS = [
    "Parental leave is twenty weeks at full pay.",
    "Annual leave is twenty days a year.",
    "Sick leave needs a doctor's note after three days.",
    "Expenses are paid at the end of each month.",
    "Leave requests go to your manager.",
    "Twenty weeks of notice for a sabbatical.",
]


def _load(server: str, name: str, texts: list[str]) -> None:
    """Collection NAME with one document per text, given with its chunk and hashing vector (ready at once)."""
    embedder = HashingEmbedder(8)
    with httpx.Client(base_url=server) as client:
        client.post("/v1/collections", json={"name": name, "embedding_provider": "hashing", "dimensions": 8})
        for i, body in enumerate(texts):
            chunks = [{"text": body, "embedding": embedder.embed([body])[0].tolist()}]
            document = {"external_id": f"d{i}", "content": body, "chunks": chunks}
            assert client.post(f"/v1/collections/{name}/documents", json=document).status_code == 202


def _psql_chunk_ids(url: str, sql: str) -> list[int]:
    """SQL pasted into the bundled psql: the chunk_id column of its rows."""
    result = subprocess.run(
        [str(bin_dir() / "psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--csv", url, "-f", "-"],
        input=sql, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [int(row["chunk_id"]) for row in csv.DictReader(io.StringIO(result.stdout))]


def test_an_answer_streams_in_with_its_citations_linked_to_the_chunks(browser: Any, fresh_db_url: str) -> None:
    with OpenAIServer() as chat:
        chat.chat.reply("The aardvark eats ants and termites [2].")
        chat.chat.chunk_delay = 0.05
        settings = chat_settings_for(settings_for(fresh_db_url), chat)
        with serving(create_app(settings, worker=True)) as url:
            with httpx.Client(base_url=url) as client:
                client.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 256})
                assert client.post("/v1/collections/kb/documents", json=rag_documents()).status_code == 202
            context, offline = open_offline(browser, url)
            page = offline.page
            offline.goto("/console/collections/kb/answer")
            page.get_by_label("Question").fill("What does the aardvark eat?")
            page.get_by_label("Retrieval").select_option("text")
            page.get_by_role("button", name="Ask").click()
            page.get_by_text("cites [2]", exact=False).wait_for()
            offline.screenshot("answer")

            assert page.locator("#answer-text").inner_text() == "The aardvark eats ants and termites [2]."
            assert page.locator("#answer-text a").get_attribute("href") == "#source-2"
            assert "cited" in page.locator("#source-2").get_attribute("class")
            source = page.locator("#source-2")
            href = source.locator("a").get_attribute("href")
            ordinal = re.search(r"#chunk-(\d+)$", href).group(1)
            quoted = source.locator("p").inner_text()
            source.locator("a").click()
            page.wait_for_url(f"**/console/collections/kb/document*#chunk-{ordinal}")
            assert page.locator(f"#chunk-{ordinal} td.text").inner_text() == quoted
            assert offline.refused == []
            context.close()
