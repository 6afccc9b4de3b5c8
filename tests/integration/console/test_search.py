"""The search playground over HTTP: the form, results with highlights and each ranking's rank and score, two
columns with the rank changes marked, the SQL of each column, and problems shown at their field (the filter's at
its path)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.integration.console.test_document import chunk

HTML = {"Accept": "text/html"}
TEXTS = [
    "Parental leave is twenty weeks at full pay.",
    "Annual leave is twenty days a year.",
    "Sick leave needs a doctor's note after three days.",
    "Expenses are paid at the end of each month.",
    "Leave requests go to your manager.",
    "Twenty weeks of notice for a sabbatical.",
]


@pytest.fixture
def kb(api: TestClient) -> str:
    api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 8})
    for i, body in enumerate(TEXTS):
        document = {"external_id": f"d{i}", "content": body, "metadata": {"team": "hr" if i != 3 else "finance"},
                    "chunks": [chunk(body, [])]}  # fmt: skip
        assert api.post("/v1/collections/kb/documents", json=document).status_code == 202
    return "kb"


def hits(html: str, column: str) -> list[int]:
    section = html.split(f'data-column="{column}"', 1)[1].split("</section>", 1)[0]
    return [int(i) for i in re.findall(r'<li data-chunk="(\d+)">', section)]


def sql_of(html: str, column: str) -> str:
    found = re.search(rf'<pre id="sql-{column}"[^>]*>(.*?)</pre>', html, re.S)
    assert found is not None
    return found.group(1).replace("&#39;", "'").replace("&#34;", '"').replace("&lt;", "<").replace("&gt;", ">") \
        .replace("&amp;", "&")  # fmt: skip


def test_the_form_has_a_labelled_search_box_and_no_results_before_a_query(api: TestClient, kb: str) -> None:
    response = api.get(f"/console/collections/{kb}/search", headers=HTML)

    assert response.status_code == 200
    assert '<label for="query">Query</label>' in response.text
    assert re.search(r'<input type="search" id="query" name="query"', response.text)
    assert 'data-column="a"' not in response.text


def test_results_carry_highlights_each_ranking_s_rank_and_score_and_the_api_s_order(api: TestClient, kb: str) -> None:
    response = api.get(f"/console/collections/{kb}/search", params={"query": "twenty leave"}, headers=HTML)
    answer = api.post(f"/v1/collections/{kb}/search", json={"query": "twenty leave"}).json()

    assert response.status_code == 200
    assert hits(response.text, "a") == [hit["chunk_id"] for hit in answer["results"]]
    assert "Parental <b>leave</b> is <b>twenty</b> weeks at full pay." in response.text
    first = answer["results"][0]["scores"]
    assert f"text #{first['text']['rank']} ({first['text']['score']:.3f})" in response.text
    assert f"vector #{first['vector']['rank']} ({first['vector']['score']:.3f})" in response.text


def test_two_columns_mark_where_each_result_moved(api: TestClient, kb: str) -> None:
    params = {"query": "twenty leave", "compare": "1", "mode": "vector", "b.mode": "text"}

    response = api.get(f"/console/collections/{kb}/search", params=params, headers=HTML)

    first, second = hits(response.text, "a"), hits(response.text, "b")
    assert first != second
    section = response.text.split('data-column="b"', 1)[1]
    shown = re.findall(r'<span class="mark mark-(\w+)"[^>]*>([^<]*)</span>', section)
    for place, (chunk_id, (change, mark)) in enumerate(zip(second, shown, strict=True)):
        before = first.index(chunk_id)
        want = "same" if before == place else ("up" if before > place else "down")
        assert change == want
        assert mark == {"same": "=", "up": f"▲{before - place}", "down": f"▼{place - before}"}[want]


def test_each_column_s_sql_lists_its_results_in_order(api: TestClient, kb: str, db: Session) -> None:
    params = {"query": "twenty weeks leave", "compare": "1", "fusion": "convex", "b.fusion": "rrf", "ef_search": "20",
              "filter": '{"team": "hr"}'}  # fmt: skip

    response = api.get(f"/console/collections/{kb}/search", params=params, headers=HTML)

    for column in ("a", "b"):
        rows = db.execute(text(sql_of(response.text, column))).mappings().all()
        assert [row["chunk_id"] for row in rows] == hits(response.text, column)
    assert "'rrf'::text" in sql_of(response.text, "b")
    assert "20::integer" in sql_of(response.text, "a")


def test_a_filter_error_is_shown_at_its_path(api: TestClient, kb: str) -> None:
    params = {"query": "leave", "filter": '{"$or": [{"team": "hr"}, {"year": {"$in": 3}}]}'}

    response = api.get(f"/console/collections/{kb}/search", params=params, headers=HTML)

    assert response.status_code == 422
    assert '<li class="problem"><code>filter.$or[1].year.$in</code>: expected an array of values</li>' in response.text
    assert 'aria-describedby="filter-problems"' in response.text


def test_problems_are_shown_at_the_field_of_their_column(api: TestClient, kb: str) -> None:
    params = {"query": "leave", "compare": "1", "b.candidates": "0", "filter": "{team"}

    response = api.get(f"/console/collections/{kb}/search", params=params, headers=HTML)

    assert response.status_code == 422
    assert 'id="b-candidates" name="b.candidates" inputmode="numeric" value="0"' in response.text
    assert '<p class="problem" id="problem-b-candidates">Input should be greater than or equal to 1' in response.text
    assert "<code>filter</code>: not JSON: Expecting property name enclosed in double quotes" in response.text
    assert 'id="problem-candidates"' not in response.text
