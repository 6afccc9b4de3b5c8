"""Journey 3 in Chromium, as a person takes it: import a JSONL file with bad lines and read the problems by line,
split, settle a duplicate cluster by dropping one example, take a snapshot and diff it with an earlier one. Then the
same dataset page at phone width, worked with the keyboard alone."""

from __future__ import annotations

import json
from typing import Any

from tests.browser.conftest import Offline, open_offline

GOOD = [
    {"text": "Where is my refund?", "label": "billing"},
    {"text": "How do I reset my password?", "label": "account"},
    {"text": "Can I pay by invoice?", "label": "billing"},
    {"text": "The login page never loads", "label": "bug"},
    {"text": "Please close my account", "label": "account"},
    {"text": "Export fails with a timeout", "label": "bug"},
    {"text": "Do you offer a student discount?", "label": "billing"},
    {"text": "Two factor codes arrive late", "label": "account"},
]
BAD = {
    3: b'{"text": "The app crashes on start", "label": ""}',
    5: b"{not json",
    8: b'{"text": 5, "label": "billing"}',
}
DUPLICATE = {"text": "where is my   REFUND?", "label": "billing"}  # the first line once case and spacing are set aside


def jsonl() -> bytes:
    """GOOD with the BAD lines at their line numbers, and DUPLICATE last."""
    lines = [json.dumps(record).encode() for record in GOOD]
    for number, line in sorted(BAD.items()):
        lines.insert(number - 1, line)
    return b"\n".join([*lines, json.dumps(DUPLICATE).encode()]) + b"\n"


def make_dataset(offline: Offline) -> None:
    created = offline.page.request.post(
        f"{offline.base}/v1/datasets", data={"name": "support", "task": "classification"}
    )
    assert created.status == 201


def take_snapshot(page: Any, name: str) -> None:
    page.get_by_role("link", name="Snapshots", exact=True).click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Take snapshot").click()
    page.get_by_text(f"Snapshot {name} taken.").wait_for()


def test_journey_3_import_split_drop_a_duplicate_snapshot_and_diff(offline: Offline) -> None:
    page = offline.page
    make_dataset(offline)
    offline.goto("/console")
    page.get_by_role("link", name="support", exact=True).click()
    page.wait_for_url("**/console/datasets/support")

    page.get_by_label("File: JSONL, CSV or SQuAD JSON").set_input_files(
        [{"name": "support.jsonl", "mimeType": "application/jsonl", "buffer": jsonl()}]
    )
    page.get_by_role("button", name="Import", exact=True).click()
    report = page.locator("#import-report")
    report.wait_for()
    assert "12 records read: 9 stored, 0 already in the dataset, 3 rejected." in " ".join(report.inner_text().split())
    lines = report.locator("tr[data-line]")
    assert sorted(int(n) for n in lines.evaluate_all("rows => rows.map(r => r.dataset.line)")) == [3, 5, 8]
    assert "must not be empty" in report.locator('tr[data-line="3"]').inner_text()
    report.get_by_role("link", name="label (1)").click()  # only the problems of one field
    assert report.locator('tr[data-line="3"]').is_visible()
    assert not report.locator('tr[data-line="5"]').is_visible()
    assert not report.locator('tr[data-line="8"]').is_visible()
    report.get_by_role("link", name="All fields (3)").click()
    assert report.locator('tr[data-line="8"]').is_visible()

    page.get_by_label("Train", exact=True).fill("0.6")
    page.get_by_label("Validation", exact=True).fill("0.2")
    page.get_by_label("Test", exact=True).fill("0.2")
    page.get_by_role("button", name="Split", exact=True).click()
    done = page.locator("#split-done")
    done.wait_for()
    assert "of 9 examples changed split" in done.inner_text()
    take_snapshot(page, "v1")

    page.get_by_role("link", name="Duplicates", exact=True).click()
    cluster = page.locator("section.cluster")
    assert cluster.count() == 1
    boxes = cluster.locator('input[name="drop"]')
    assert [boxes.nth(i).is_checked() for i in range(boxes.count())] == [False, True]  # the first stays
    dropped = boxes.nth(1).get_attribute("value")
    cluster.get_by_role("button", name="Drop the checked examples").click()
    page.get_by_text("Dropped 1 example;", exact=False).wait_for()
    assert page.get_by_text("No duplicates.").is_visible()
    take_snapshot(page, "v2")

    page.get_by_role("button", name="Compare").click()  # the newest against the one before: v2 against v1
    page.wait_for_url("**/console/datasets/support/diff?snapshot=v2&against=v1")
    counts = page.locator("#diff-counts")
    assert counts.locator('[data-change="removed"] .count').inner_text() == "1"
    assert counts.locator('[data-change="added"] .count').inner_text() == "0"
    assert page.locator("tr[data-change]").evaluate_all("rows => rows.map(r => r.dataset.example)") == [dropped]
    offline.screenshot("journey-3-datasets")
    assert offline.refused == []


def test_the_dataset_page_reads_at_phone_width_and_works_from_the_keyboard(browser: Any, server: str) -> None:
    context, offline = open_offline(browser, server, viewport={"width": 390, "height": 844})
    page = offline.page
    make_dataset(offline)
    records = b"\n".join(json.dumps(r).encode() for r in GOOD)
    page.request.post(f"{server}/v1/datasets/support/import", multipart={
        "file": {"name": "a.jsonl", "mimeType": "application/jsonl", "buffer": records}})  # fmt: skip
    offline.goto("/console/datasets/support")

    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    chart = page.locator('svg[data-chart="labels"]').bounding_box()
    page.locator("#filter-label").focus()
    page.keyboard.press("ArrowDown")  # "account", the first label by name after "All"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the Filter button
    page.wait_for_url("**/console/datasets/support?split=&label=*")
    offline.screenshot("dataset-phone")

    assert overflow <= 0  # nothing wider than the screen: tables scroll inside their box
    assert chart is not None
    assert chart["width"] <= 390
    assert page.locator("tr[data-example]").count() == 3
    assert offline.refused == []
    context.close()
