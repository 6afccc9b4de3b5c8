"""A collection's evaluation runs in the console (open loopback mode): the list with its pager, and one run's
tables and inline SVG charts, whose numbers are the stored summary's."""

from __future__ import annotations

import re
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.console.pages.evaluations import PAGE_SIZE
from tests.factories import eval_run_summary, make_collection, make_eval_run

HTML = {"Accept": "text/html"}


def rows_of(html: str) -> list[str]:
    return re.findall(r'<tr data-run="(\d+)">', html)


def test_the_collection_page_links_its_evaluations(api: TestClient, db: Session) -> None:
    collection = make_collection(db)

    page = api.get(f"/console/collections/{collection.name}", headers=HTML)

    assert f'<a href="http://testserver/console/collections/{collection.name}/evaluations">Evaluations</a>' in page.text


def test_runs_are_listed_newest_first_with_ndcg_per_mode_and_a_pager(api: TestClient, db: Session) -> None:
    collection = make_collection(db)
    runs = [make_eval_run(db, collection) for _ in range(PAGE_SIZE + 2)]
    newest = make_eval_run(db, collection, summary=eval_run_summary({"text": 0.5, "hybrid": 0.75}, sweep=False))
    url = f"/console/collections/{collection.name}/evaluations"

    first = api.get(url, headers=HTML)
    cursor = re.search(r'cursor=([^"]+)" rel="next"', first.text)
    assert cursor is not None
    second = api.get(f"{url}?cursor={cursor.group(1)}", headers=HTML)

    assert first.status_code == 200
    ids = [str(run.id) for run in reversed([*runs, newest])]
    assert rows_of(first.text) == ids[:PAGE_SIZE]
    assert rows_of(second.text) == ids[PAGE_SIZE:]
    assert 'rel="next"' not in second.text
    assert re.findall(r'<th scope="col" class="number">nDCG@10 (\w+)</th>', first.text) == ["text", "vector", "hybrid"]
    row = re.search(rf'<tr data-run="{newest.id}">(.*?)</tr>', first.text, flags=re.S)
    assert row is not None
    assert re.findall(r'<td class="number">([^<]*)</td>', row.group(1)) == ["5", "0.5000", "not run", "0.7500"]
    assert "queries.jsonl and test.tsv" in row.group(1)


def test_a_collection_without_runs_says_how_to_make_one(api: TestClient, db: Session) -> None:
    collection = make_collection(db)

    page = api.get(f"/console/collections/{collection.name}/evaluations", headers=HTML)

    assert page.status_code == 200
    assert "No evaluation run stored." in page.text
    assert f"memora eval -c {collection.name}" in page.text


def cells(html: str, caption: str) -> list[list[str]]:
    """The body rows of the table with CAPTION, as their cells' text."""
    table = re.search(rf"<caption>{re.escape(caption)}</caption>(.*?)</table>", unescape(html), flags=re.S)
    assert table is not None, caption
    body = table.group(1).split("<tbody>")[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row) for row in rows]


def test_a_run_shows_its_numbers_in_tables_and_its_three_charts_as_svg(api: TestClient, db: Session) -> None:
    collection = make_collection(db)
    run = make_eval_run(db, collection)
    order = run.params["modes"]  # the run's order (jsonb keeps an object's keys in its own)
    modes = {mode: run.summary["modes"][mode] for mode in order}
    curves, sweep = {mode: run.summary["recall_curve"][mode] for mode in order}, run.summary["sweep"]

    page = api.get(f"/console/collections/{collection.name}/evaluations/{run.id}", headers=HTML)

    assert page.status_code == 200
    html = page.text
    assert cells(html, "Each mode's metrics, latency and judged queries") == [
        [mode, *(f"{s[key]:.4f}" for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10")), f"{s['p50_ms']:.1f}",
         f"{s['p95_ms']:.1f}", str(s["queries"])]
        for mode, s in modes.items()
    ]  # fmt: skip
    assert cells(html, "nDCG@10 per mode: the bars' values") == [[m, f"{s['ndcg@10']:.4f}"] for m, s in modes.items()]
    assert cells(html, "Mean recall@k per mode") == [
        [mode, *(f"{curve[k - 1]:.4f}" for k in (1, 5, 10, 20, 50, 100))] for mode, curve in curves.items()
    ]
    assert cells(html, "p50 latency and nDCG@10 per setting") == [
        [p["mode"], p["label"], f"{p['p50_ms']:.1f}", f"{p['ndcg@10']:.4f}"] for p in sweep
    ]
    assert "fusion convex, rrf_k 60, weights text 1 : vector 1, candidates default (4 x k)" in html
    svg = r'<svg class="chart" viewBox="0 0 640 320" role="img" aria-labelledby="(\w+)-title \1-desc"'
    assert re.findall(svg, html) == ["ndcg", "recall", "latency"]
    bars = re.findall(r'<rect class="bar mode-(\w+)" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"/>', html)
    assert [mode for mode, _ in bars] == list(modes)
    heights = [260 * modes[m]["ndcg@10"] for m in modes]  # the plot is 260 high
    assert [float(h) for _, h in bars] == pytest.approx(heights, abs=0.15)
    series = r'<g class="series" data-series="([^"]+)">\s*<polyline class="line mode-\w+[^"]*" points="([^"]+)"'
    lines = re.findall(series, html)
    assert [name for name, _ in lines] == ["text", "vector", "hybrid", "vector, ef_search"]
    assert [len(points.split()) for _, points in lines] == [100, 100, 100, 4]
    assert " style=" not in html
    assert "<script>" not in html
    assert '<h2 id="tuning-title">' not in html  # no --tune, no tuning section


def test_a_run_without_a_sweep_or_curves_still_shows_its_modes(api: TestClient, db: Session) -> None:
    collection = make_collection(db)
    summary = eval_run_summary({"text": 0.5, "hybrid": 0.75}, sweep=False)
    del summary["recall_curve"]
    run = make_eval_run(db, collection, summary=summary)

    html = api.get(f"/console/collections/{collection.name}/evaluations/{run.id}", headers=HTML).text

    assert "No latency sweep in this run" in html
    assert cells(html, "p50 latency and nDCG@10 per setting") == [["text", "k 200", "1.5", "0.5000"],
                                                                   ["hybrid", "k 200", "2.5", "0.7500"]]  # fmt: skip
    assert "This run kept no recall curve." in html
    assert html.count('<svg class="chart"') == 2


def test_a_missing_run_is_the_console_s_404_page_naming_it(api: TestClient, db: Session) -> None:
    collection = make_collection(db)

    page = api.get(f"/console/collections/{collection.name}/evaluations/999999", headers=HTML)

    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert f"collection &#39;{collection.name}&#39; has no evaluation run 999999" in page.text
