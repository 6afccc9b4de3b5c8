"""A dataset's console pages over HTTP (open loopback mode, and with keys required for what a read key sees): the
summary with its charts and tables, examples by split, label and page, importing with the report by line,
splitting, duplicate clusters settled by hand, leakage, snapshots and their diff, and downloads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.auth import keys
from app.auth.principal import Role
from app.config import Settings
from app.console.pages.datasets import PAGE_SIZE
from app.db.engine import make_engine
from app.db.models import Example
from tests.integration.console.test_collection import csrf

HTML = {"Accept": "text/html"}
BAD_JSONL = b"\n".join(
    [
        b'{"text": "Where is my refund?", "label": "billing"}',
        b'{"text": "The app crashes on start", "label": ""}',
        b"{not json",
        b'{"text": "How do I reset my password?", "label": "account"}',
        b'{"text": 5, "label": "billing"}',
        b'{"text": "where is my   REFUND?", "label": "billing"}',
    ]
)


def rows_in(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-example="(\d+)"', html)]


def problem_lines(html: str) -> list[tuple[int, str]]:
    found = re.findall(r'<tr data-line="(\d+)"><td class="number">\d+</td><td><code>([^<]*)</code>', html)
    return sorted((int(line), field) for line, field in found)


def add(api: TestClient, dataset: str, examples: list[dict[str, Any]]) -> None:
    response = api.post(f"/v1/datasets/{dataset}/examples", json=examples)
    assert response.status_code == 201, response.text


@pytest.fixture
def support(api: TestClient) -> str:
    assert api.post("/v1/datasets", json={"name": "support", "task": "classification"}).status_code == 201
    return "support"


@pytest.fixture
def filled(api: TestClient, support: str) -> str:
    """PAGE_SIZE + 5 examples, a third of them "ham"."""
    add(api, support, [{"text": f"message number {i}", "label": "ham" if i % 3 == 0 else "spam"} for i in range(55)])
    return support


def import_file(api: TestClient, dataset: str, content: bytes, name: str = "lines.jsonl", **form: str) -> Any:
    files = {"file": (name, content, "application/octet-stream")}
    data = {"csrf_token": csrf(api), **form}
    return api.post(f"/console/datasets/{dataset}/import", files=files, data=data, headers=HTML)


def test_the_home_page_links_each_dataset_to_its_page(api: TestClient, support: str) -> None:
    html = api.get("/console", headers=HTML).text

    assert '<th scope="row"><a href="http://testserver/console/datasets/support">support</a></th>' in html


def test_the_summary_draws_split_sizes_and_labels_as_svg_with_a_table_of_each(api: TestClient, filled: str) -> None:
    api.post(f"/v1/datasets/{filled}/split", json={"ratios": {"train": 0.6, "validation": 0.2, "test": 0.2}})
    splits = api.get(f"/v1/datasets/{filled}/split").json()["counts"]

    response = api.get(f"/console/datasets/{filled}", headers=HTML)

    assert response.status_code == 200
    html = response.text
    assert 'data-chart="splits"' in html
    assert 'data-chart="labels"' in html
    for split, count in splits.items():
        assert f'<tr><th scope="row">{split}</th><td class="number">{count}</td>' in html
    assert '<tr><th scope="row">spam</th><td class="number">36</td><td class="number">65.5%</td></tr>' in html
    assert '<tr><th scope="row">ham</th><td class="number">19</td><td class="number">34.5%</td></tr>' in html
    assert html.count('class="bar"></rect>') == 3 + 2  # a bar per split and per label
    assert " style=" not in html  # the CSP forbids inline styles: SVG presentation attributes and classes only


def test_examples_come_a_page_at_a_time_filtered_by_split_and_label(api: TestClient, filled: str) -> None:
    api.post(f"/v1/datasets/{filled}/split", json={"ratios": {"train": 0.5, "validation": 0.25, "test": 0.25}})
    listed = api.get(f"/v1/datasets/{filled}/examples", params={"limit": 1000}).json()["items"]

    first = api.get(f"/console/datasets/{filled}", headers=HTML).text
    cursor = re.search(r'href="[^"]*\?cursor=(\d+)" rel="next"', first)
    assert cursor is not None
    second = api.get(f"/console/datasets/{filled}?cursor={cursor.group(1)}", headers=HTML).text
    tests = api.get(f"/console/datasets/{filled}?split=test&label=ham", headers=HTML).text

    assert rows_in(first) == [e["id"] for e in listed[:PAGE_SIZE]]
    assert rows_in(second) == [e["id"] for e in listed[PAGE_SIZE:]]
    assert 'rel="next"' not in second
    wanted = [e["id"] for e in listed if e["split"] == "test" and e["record"]["label"] == "ham"]
    assert wanted
    assert rows_in(tests) == wanted
    assert '<option value="test" selected>' in tests
    assert '<option value="ham" selected>' in tests


def test_a_bad_filter_is_shown_by_its_field(api: TestClient, filled: str) -> None:
    split = api.get(f"/console/datasets/{filled}?split=holdout", headers=HTML)
    cursor = api.get(f"/console/datasets/{filled}?cursor=later", headers=HTML)

    assert split.status_code == cursor.status_code == 422
    assert '<p class="problem" id="problem-split">unknown split &#39;holdout&#39;' in split.text
    assert 'id="filter-split" name="split" aria-invalid="true"' in split.text
    assert '<p class="problem" id="problem-cursor">not a cursor this API gave out</p>' in cursor.text


def test_an_import_reports_every_rejected_line_by_field_and_stores_the_good_ones(api: TestClient, support: str) -> None:
    response = import_file(api, support, BAD_JSONL)

    assert response.status_code == 200
    html = response.text
    assert "6 records read: <strong>3 stored</strong>" in html
    assert "<strong>3 rejected</strong>" in html
    assert problem_lines(html) == [(2, "label"), (3, ""), (5, "text")]
    assert '<a href="#problems-1">the line (1)</a>' in html  # a line that is not JSON names no field
    assert re.search(r'<section id="problems-\d" aria-labelledby="[^"]+" data-field="label">', html)
    stored = api.get(f"/v1/datasets/{support}/examples").json()["items"]
    assert [e["record"]["text"] for e in stored] == [
        "Where is my refund?",
        "How do I reset my password?",
        "where is my   REFUND?",
    ]


def test_a_strict_import_with_a_bad_line_stores_nothing_and_says_why(api: TestClient, support: str) -> None:
    response = import_file(api, support, BAD_JSONL, mode="strict")

    assert response.status_code == 422
    assert "(strict: nothing was stored)" in response.text
    assert problem_lines(response.text) == [(2, "label"), (3, ""), (5, "text")]
    assert api.get(f"/v1/datasets/{support}").json()["examples"] == 0


def test_an_import_without_a_usable_file_is_the_page_with_the_problem(api: TestClient, support: str) -> None:
    empty = api.post(
        f"/console/datasets/{support}/import", data={"csrf_token": csrf(api), "mode": "skip"}, headers=HTML
    )
    text = import_file(api, support, b"hello", name="notes.txt")
    mode = import_file(api, support, BAD_JSONL, mode="lenient")

    assert empty.status_code == 422
    assert '<p class="problem" id="problem-file">choose a file to import</p>' in empty.text
    assert text.status_code == 415
    assert '<p class="problem" id="problem-file">cannot import notes.txt' in text.text
    assert mode.status_code == 422
    assert '<p class="problem" id="problem-mode">choose skip or strict</p>' in mode.text


def test_the_split_form_splits_and_shows_the_new_sizes(api: TestClient, filled: str) -> None:
    form = {"train": "0.7", "validation": "0.1", "test": "0.2", "seed": "7", "csrf_token": csrf(api)}

    response = api.post(f"/console/datasets/{filled}/split", data=form, headers=HTML)

    assert response.status_code == 200
    counts = api.get(f"/v1/datasets/{filled}/split").json()
    assert counts["rule"] == {"ratios": {"train": 0.7, "validation": 0.1, "test": 0.2}, "seed": 7, "stratified": False}
    sizes = counts["counts"]
    assert sum(sizes.values()) == 55
    assert (
        f"Now:\n    train <strong>{sizes['train']}</strong>, validation <strong>{sizes['validation']}</strong>, "
        f"test <strong>{sizes['test']}</strong>."
    ) in response.text


def test_a_split_with_bad_ratios_names_each_field_and_changes_nothing(api: TestClient, filled: str) -> None:
    sums = {"train": "0.7", "validation": "0.7", "test": "", "seed": "1", "csrf_token": csrf(api)}
    typed = {"train": "most", "validation": "0.1", "test": "0.1", "seed": "x", "csrf_token": csrf(api)}

    too_much = api.post(f"/console/datasets/{filled}/split", data=sums, headers=HTML)
    words = api.post(f"/console/datasets/{filled}/split", data=typed, headers=HTML)

    assert too_much.status_code == words.status_code == 422
    assert "must add up to 1 (they add up to 1.4)" in too_much.text
    assert '<p class="problem" id="problem-train">Input should be a valid number' in words.text
    assert 'name="train" inputmode="decimal" value="most" aria-invalid="true"' in words.text
    assert '<p class="problem" id="problem-seed">Input should be a valid integer' in words.text
    assert '<li><a href="#split-train">train</a>: Input should be a valid number' in words.text  # the summary on top
    assert api.get(f"/v1/datasets/{filled}/split").json()["rule"]["seed"] == 0


def test_a_duplicate_cluster_is_settled_by_dropping_the_checked_examples(api: TestClient, support: str) -> None:
    import_file(api, support, BAD_JSONL)
    ids = [e["id"] for e in api.get(f"/v1/datasets/{support}/examples").json()["items"]]
    refund, _, again = ids

    page = api.get(f"/console/datasets/{support}/duplicates", headers=HTML)
    assert page.status_code == 200
    assert f'id="cluster-{refund}"' in page.text
    assert f'<input type="checkbox" name="drop" value="{again}" aria-label="Drop example {again}" checked>' in page.text
    assert f'name="drop" value="{refund}" aria-label="Drop example {refund}">' in page.text  # the first stays
    form = {"members": [refund, again], "drop": [again], "cluster": refund, "csrf_token": csrf(api)}
    response = api.post(f"/console/datasets/{support}/duplicates/resolve", data=form, headers=HTML)

    assert response.status_code == 200  # after the redirect
    assert str(response.url).endswith(f"/console/datasets/{support}/duplicates?provider=local&threshold=0.95&dropped=1")
    assert "Dropped 1 example;" in response.text
    assert "No duplicates." in response.text
    live = [e["id"] for e in api.get(f"/v1/datasets/{support}/examples").json()["items"]]
    assert live == [refund, ids[1]]


def test_settling_a_cluster_without_keeping_or_dropping_one_is_refused(api: TestClient, support: str) -> None:
    import_file(api, support, BAD_JSONL)
    refund, _, again = [e["id"] for e in api.get(f"/v1/datasets/{support}/examples").json()["items"]]
    base = {"members": [refund, again], "cluster": refund, "csrf_token": csrf(api)}

    nothing = api.post(f"/console/datasets/{support}/duplicates/resolve", data=base, headers=HTML)
    everything = api.post(
        f"/console/datasets/{support}/duplicates/resolve", data={**base, "drop": [refund, again]}, headers=HTML
    )

    assert nothing.status_code == everything.status_code == 422
    assert f"The cluster of example {refund} was not changed" in nothing.text
    assert "<li>drop: check at least one example to drop</li>" in nothing.text
    assert "<li>keep: is empty: keep at least one example of the cluster</li>" in everything.text
    assert api.get(f"/v1/datasets/{support}").json()["examples"] == 3


def test_near_duplicates_are_found_when_asked(api: TestClient, support: str) -> None:
    add(api, support, [{"text": "the refund takes thirty days", "label": "billing"},
                       {"text": "the refund takes thirty days!", "label": "billing"},
                       {"text": "a completely different question about passwords", "label": "account"}])  # fmt: skip

    exact = api.get(f"/console/datasets/{support}/duplicates", headers=HTML)
    near = api.get(f"/console/datasets/{support}/duplicates?near=1&provider=hashing&threshold=0.8", headers=HTML)
    bad = api.get(f"/console/datasets/{support}/duplicates?near=1&provider=hashing&threshold=2", headers=HTML)

    assert "No duplicates." in exact.text
    assert "1 near (hashing/hashing)" in near.text
    assert "Near duplicates of example" in near.text
    assert bad.status_code == 422
    assert '<p class="problem" id="problem-threshold">Input should be less than or equal to 1</p>' in bad.text


def test_the_leakage_report_runs_when_asked_and_lists_the_pairs(api: TestClient, support: str, db: Session) -> None:
    add(api, support, [{"text": "the refund takes thirty days", "label": "billing"},
                       {"text": "the refund takes thirty days!", "label": "billing"}])  # fmt: skip
    first, second = [e["id"] for e in api.get(f"/v1/datasets/{support}/examples").json()["items"]]
    db.execute(update(Example).where(Example.id == first).values(split="train"))
    db.execute(update(Example).where(Example.id == second).values(split="test"))

    form = api.get(f"/console/datasets/{support}/leakage", headers=HTML)
    report = api.get(f"/console/datasets/{support}/leakage?provider=hashing&threshold=0.8&k=5", headers=HTML)
    bad = api.get(f"/console/datasets/{support}/leakage?provider=hashing&threshold=0.8&k=0", headers=HTML)

    assert form.status_code == 200
    assert 'id="leak-counts"' not in form.text
    assert report.status_code == 200
    assert "<strong>1 pair</strong>" in report.text
    assert f'<tr data-pair="{first}-{second}">' in report.text
    assert bad.status_code == 422
    assert '<p class="problem" id="problem-k">Input should be greater than or equal to 1</p>' in bad.text


def test_a_snapshot_is_taken_from_the_form_and_a_bad_name_is_refused(api: TestClient, filled: str) -> None:
    made = api.post(
        f"/console/datasets/{filled}/snapshots", data={"snapshot": "v1", "csrf_token": csrf(api)}, headers=HTML
    )
    again = api.post(
        f"/console/datasets/{filled}/snapshots", data={"snapshot": "v1", "csrf_token": csrf(api)}, headers=HTML
    )
    spaced = api.post(
        f"/console/datasets/{filled}/snapshots", data={"snapshot": "no spaces", "csrf_token": csrf(api)}, headers=HTML
    )

    assert made.status_code == 200
    assert str(made.url).endswith(f"/console/datasets/{filled}/snapshots?created=v1")
    assert "Snapshot v1 taken." in made.text
    assert re.search(r'<tr data-snapshot="v1">\s*<th scope="row">v1</th>\s*<td class="number">55</td>', made.text)
    assert again.status_code == 409
    assert '<p class="problem" id="problem-snapshot">is taken</p>' in again.text
    assert spaced.status_code == 422
    assert 'id="snapshot-name" name="snapshot" required value="no spaces" aria-invalid="true"' in spaced.text


def test_the_diff_of_two_snapshots_counts_each_change_and_pages_through_them(api: TestClient, support: str) -> None:
    add(api, support, [{"text": f"message number {i}", "label": "spam"} for i in range(3)])
    first = [e["id"] for e in api.get(f"/v1/datasets/{support}/examples").json()["items"]]
    api.post(f"/v1/datasets/{support}/snapshots", json={"name": "v1"})
    api.delete(f"/v1/datasets/{support}/examples/{first[0]}")
    add(api, support, [{"text": f"new message {i}", "label": "ham"} for i in range(PAGE_SIZE + 2)])
    api.post(f"/v1/datasets/{support}/snapshots", json={"name": "v2"})

    page = api.get(f"/console/datasets/{support}/diff?snapshot=v2&against=v1", headers=HTML)
    cursor = re.search(r'href="[^"]*cursor=(\d+)" rel="next"', page.text)
    assert cursor is not None
    rest = api.get(f"/console/datasets/{support}/diff?snapshot=v2&against=v1&cursor={cursor.group(1)}", headers=HTML)
    removed = api.get(f"/console/datasets/{support}/diff?snapshot=v2&against=v1&change=removed", headers=HTML)

    assert page.status_code == 200
    assert (
        '<a href="http://testserver/console/datasets/support/diff?snapshot=v2&amp;against=v1&amp;change=added"'
        in page.text
    )
    assert 'data-change="added">Added (<span class="count">52</span>)' in page.text
    assert 'data-change="removed">Removed (<span class="count">1</span>)' in page.text
    assert len(rows_in(page.text)) + len(rows_in(rest.text)) == 53
    assert rows_in(removed.text) == [first[0]]
    assert "no (deleted)" in removed.text
    assert '<option value="v1" selected>' in page.text


def test_a_diff_of_a_missing_snapshot_names_the_field(api: TestClient, filled: str) -> None:
    api.post(f"/v1/datasets/{filled}/snapshots", json={"name": "v1"})

    blank = api.get(f"/console/datasets/{filled}/diff", headers=HTML)
    ghost = api.get(f"/console/datasets/{filled}/diff?snapshot=v1&against=v0", headers=HTML)
    half = api.get(f"/console/datasets/{filled}/diff?snapshot=v1", headers=HTML)

    assert blank.status_code == 200
    assert 'id="diff-counts"' not in blank.text
    assert ghost.status_code == 404
    assert (
        '<p class="problem" id="problem-against">dataset &#39;support&#39; has no snapshot named &#39;v0&#39;'
        in ghost.text
    )
    assert half.status_code == 422
    assert '<p class="problem" id="problem-against">choose the snapshot to compare it with</p>' in half.text


def test_exports_download_the_same_file_as_the_api(api: TestClient, filled: str) -> None:
    api.post(f"/v1/datasets/{filled}/snapshots", json={"name": "v1"})
    html = api.get(f"/console/datasets/{filled}", headers=HTML).text

    jsonl = api.get(f"/console/datasets/{filled}/export?format=jsonl", headers=HTML)
    csv = api.get(f"/console/datasets/{filled}/export?format=csv&split=&snapshot=v1", headers=HTML)
    bad = api.get(f"/console/datasets/{filled}/export?format=docx", headers=HTML)

    assert 'href="http://testserver/console/datasets/support/export?format=csv" download>csv</a>' in html
    assert 'href="http://testserver/console/datasets/support/export?format=pairs"' not in html
    assert jsonl.status_code == 200
    assert jsonl.headers["content-disposition"] == 'attachment; filename="support-jsonl.jsonl"'
    assert jsonl.content == api.get(f"/v1/datasets/{filled}/export?format=jsonl").content
    assert json.loads(jsonl.text.splitlines()[0]) == {"text": "message number 0", "label": "ham"}
    assert csv.headers["content-disposition"] == 'attachment; filename="support-v1-csv.csv"'
    assert len(csv.text.strip().splitlines()) == 56  # a header and the 55 examples
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("text/html")
    assert "unknown format &#39;docx&#39;" in bad.text


def test_pages_of_a_missing_dataset_are_404(api: TestClient) -> None:
    for path in ("", "/duplicates", "/leakage", "/snapshots", "/diff"):
        response = api.get(f"/console/datasets/ghost{path}", headers=HTML)
        assert response.status_code == 404, path
        assert "no dataset named &#39;ghost&#39;" in response.text


def test_every_form_needs_the_csrf_token(api: TestClient, filled: str) -> None:
    forms = {
        "split": {"train": "0.8", "validation": "0.1", "test": "0.1"},
        "snapshots": {"snapshot": "v1"},
        "duplicates/resolve": {"members": ["1", "2"], "drop": ["2"]},
        "import": {},
    }
    for path, form in forms.items():
        response = api.post(f"/console/datasets/{filled}/{path}", data=form, headers=HTML)
        assert response.status_code == 403, path
        assert "CSRF token is missing" in response.text


@pytest.fixture
def keyed(fresh_db_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The app with keys required, a dataset with a duplicate pair and a snapshot; a key of each role."""
    settings = Settings(database_url=fresh_db_url, auth="required")
    engine = make_engine(settings, "test")
    with Session(engine) as db:
        secrets = {role.name: keys.create(db, settings, f"{role.name}-key", role).secret for role in Role}
        db.commit()
    with TestClient(create_app(settings, engine=engine)) as client:
        admin = {"Authorization": f"Bearer {secrets['admin']}"}
        client.post("/v1/datasets", json={"name": "support", "task": "classification"}, headers=admin)
        examples = [{"text": "Refund?", "label": "billing"}, {"text": "refund?", "label": "billing"}]
        client.post("/v1/datasets/support/examples", json=examples, headers=admin)
        client.post("/v1/datasets/support/snapshots", json={"name": "v1"}, headers=admin)
        yield client, secrets
    engine.dispose()


def test_a_read_key_sees_every_page_but_no_write_control(keyed: tuple[TestClient, dict[str, str]]) -> None:
    client, secrets = keyed
    read = {**HTML, "Authorization": f"Bearer {secrets['read']}"}
    write = {**HTML, "Authorization": f"Bearer {secrets['write']}"}
    pages = ("", "/duplicates", "/snapshots", "/diff?snapshot=v1&against=v1", "/leakage")

    for path in pages:
        seen = client.get(f"/console/datasets/support{path}", headers=read)
        assert seen.status_code == 200, path
        assert 'method="post"' not in seen.text, path
        assert 'type="checkbox" name="drop"' not in seen.text
    assert (
        'action="http://testserver/console/datasets/support/import"'
        in client.get("/console/datasets/support", headers=write).text
    )
    assert 'type="checkbox" name="drop"' in client.get("/console/datasets/support/duplicates", headers=write).text
    forced = client.post("/console/datasets/support/split", data={"train": "1"}, headers={**read, "X-CSRF-Token": "x"})
    assert forced.status_code == 403
