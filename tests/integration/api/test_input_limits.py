"""Issue 13, cases 1-9: input that used to reach PostgreSQL or the JSON encoder and end in a 500 is a 422 naming the
field and the reason; a row stored by other means (psql) never breaks a read. Limits: docs/configuration.md."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.jsonb import CUT
from app.limits import READ_JSON_DEPTH
from tests.factories import make_chunk, make_collection, make_dataset, make_document, make_example
from tests.schema import sql

JSON = {"content-type": "application/json"}


def nested(levels: int, leaf: Any = 1) -> Any:
    """{"a": {"a": ... leaf}} with LEVELS objects."""
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def depth(value: Any) -> int:
    levels = 0
    while isinstance(value, dict) and "a" in value:
        value, levels = value["a"], levels + 1
    return levels


def problems(response: Any) -> dict[str, str]:
    """{field: reason} of a 422."""
    assert response.status_code == 422, response.text
    return {p["field"]: p["reason"] for p in response.json()["error"]["details"]}


@pytest.fixture
def notes(api: TestClient) -> TestClient:
    """A collection "notes" and a dataset "d" with one example and a snapshot "s"."""
    created = api.post("/v1/collections", json={"name": "notes", "embedding_provider": "hashing", "dimensions": 8})
    assert created.status_code == 201, created.text
    assert api.post("/v1/datasets", json={"name": "d", "task": "classification"}).status_code == 201
    assert api.post("/v1/datasets/d/examples", json=[{"text": "hello", "label": "x"}]).status_code == 201
    assert api.post("/v1/datasets/d/snapshots", json={"name": "s"}).status_code == 201
    return api


# Case 1 --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["storage", "metric", "description", "embedding_provider", "chunking", "language", "hnsw", "bm25_k1", "bm25_b",
     "metadata"],
)  # fmt: skip
def test_issue_13_case_1_null_in_a_patch_is_a_422_naming_the_field(notes: TestClient, field: str) -> None:
    response = notes.patch("/v1/collections/notes", json={field: None})

    assert problems(response) == {f"body.{field}": "Value error, cannot be null; leave the field out to keep its value"}
    assert notes.get("/v1/collections/notes").json()["storage"] == "vector"


def test_issue_13_case_1_null_model_still_means_the_providers_default(notes: TestClient) -> None:
    response = notes.patch("/v1/collections/notes", json={"embedding_model": None, "dimensions": None})

    assert response.status_code == 200, response.text
    assert response.json()["embedding_model"] == "hashing"


# Case 2 --------------------------------------------------------------------------------------------------------

UNDERFLOW = "Value error, must be 0 or at least 1.2e-38 in magnitude (PostgreSQL real underflows)"


@pytest.mark.parametrize(("field", "value"), [("bm25_b", 2.2e-313), ("bm25_k1", 1e-127), ("bm25_b", -1e-40)])
def test_issue_13_case_2_floats_postgresql_real_cannot_hold_are_a_422(
    notes: TestClient, field: str, value: float
) -> None:
    created = notes.post(
        "/v1/collections", json={"name": "other", "embedding_provider": "hashing", "dimensions": 8, field: value}
    )
    patched = notes.patch("/v1/collections/notes", json={field: value})

    reason = UNDERFLOW if value > 0 else "Input should be greater than or equal to 0"
    assert problems(created) == {f"body.{field}": reason}
    assert problems(patched) == {f"body.{field}": reason}


def test_issue_13_case_2_the_smallest_real_and_zero_are_stored(notes: TestClient) -> None:
    response = notes.patch("/v1/collections/notes", json={"bm25_k1": 1.2e-38, "bm25_b": 0})

    assert response.status_code == 200, response.text
    assert response.json()["bm25_k1"] == pytest.approx(1.2e-38)
    assert response.json()["bm25_b"] == 0


# Cases 3 and 4 -------------------------------------------------------------------------------------------------

NUL = "holds a NUL character, which PostgreSQL cannot store"
SURROGATE = "holds an unpaired surrogate, which is not text"
NOT_TEXT = "Input should be a valid string, unable to parse raw data as a unicode string"  # pydantic's, for str fields


@pytest.mark.parametrize(
    ("path", "body", "field", "reason"),
    [
        ("/v1/datasets", '{"name": "x", "task": "chat", "description": "a\\u0000"}', "body.description", NUL),
        ("/v1/datasets", '{"name": "x", "task": "chat", "metadata": {"k": ["\\u0000"]}}', "body.metadata", NUL),
        ("/v1/datasets", '{"name": "x", "task": "chat", "description": "a\\ud800"}', "body.description", NOT_TEXT),
        ("/v1/datasets/d/snapshots", '{"name": "t", "description": "a\\u0000b"}', "body.description", NUL),
        ("/v1/datasets/d/snapshots", '{"name": "t", "description": "\\udc00"}', "body.description", NOT_TEXT),
        ("/v1/collections", '{"name": "x", "language": "a\\u0000"}', "body.language", NUL),
        ("/v1/collections", '{"name": "x", "embedding_model": "\\ud800"}', "body.embedding_model", SURROGATE),
        ("/v1/collections/notes/search", '{"query": "a", "filter": {"k": "\\ud800"}}', "body.filter", SURROGATE),
    ],
)
def test_issue_13_cases_3_and_4_nul_and_lone_surrogates_in_bodies_are_a_422(
    notes: TestClient, path: str, body: str, field: str, reason: str
) -> None:
    response = notes.post(path, content=body.encode(), headers=JSON)

    assert problems(response) == {field: reason if reason == NOT_TEXT else f"Value error, {reason}"}


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("GET", "/v1/datasets/d/batches?snapshot=a%00b", "query.snapshot"),
        ("GET", "/v1/datasets/d/export?format=jsonl&snapshot=a%00", "query.snapshot"),
        ("GET", "/v1/datasets/d/export?format=triplets&negatives=1&collection=a%00", "query.collection"),
        ("GET", "/v1/datasets/d/export?format=openai-batch&model=%00", "query.model"),
        ("GET", "/v1/datasets/d/examples?label=a%00", "query.label"),
        ("GET", "/v1/datasets/d/examples?cursor=1%00", "query.cursor"),
        ("GET", "/v1/collections/notes/documents?status=%00", "query.status"),
        ("GET", "/v1/collections/notes/documents?cursor=%00", "query.cursor"),
        ("GET", "/v1/datasets/a%00b", "path.name"),
        ("DELETE", "/v1/datasets/a%00b", "path.name"),
        ("GET", "/v1/collections/a%00b", "path.name"),
        ("PATCH", "/v1/collections/a%00b", "path.name"),
        ("GET", "/v1/datasets/d/snapshots/s%00", "path.snapshot"),
        ("DELETE", "/v1/datasets/d/snapshots/s%00", "path.snapshot"),
        ("GET", "/v1/collections/notes/documents/a%00b", "path.external_id"),
        ("DELETE", "/v1/collections/notes/documents/a%00b", "path.external_id"),
    ],
)
def test_issue_13_case_4_nul_in_path_and_query_parameters_is_a_422(
    notes: TestClient, method: str, url: str, field: str
) -> None:
    response = notes.request(method, url, json={} if method == "PATCH" else None)

    assert problems(response) == {field: NUL}


def test_issue_13_case_4_nul_in_a_metadata_filter_is_a_422(notes: TestClient) -> None:
    response = notes.get("/v1/collections/notes/documents", params={"metadata": '{"k": "\\u0000"}'})

    assert problems(response) == {"metadata": NUL}


# Case 5 --------------------------------------------------------------------------------------------------------

TOO_BIG = "99999999999999999999"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", f"/v1/datasets/d/examples/{TOO_BIG}"),
        ("DELETE", f"/v1/datasets/d/examples/{TOO_BIG}"),
        ("GET", f"/v1/datasets/d/snapshots/s/examples/{TOO_BIG}"),
        ("GET", f"/v1/datasets/d/examples/-{TOO_BIG}"),
    ],
)
def test_issue_13_case_5_ids_past_bigint_are_a_422(notes: TestClient, method: str, url: str) -> None:
    """An id no bigint can hold names nothing: a 422 like any id that is not a number, not a query."""
    assert list(problems(notes.request(method, url))) == ["path.example_id"]


def test_issue_13_case_5_a_missing_id_within_bigint_is_a_404(notes: TestClient) -> None:
    assert notes.get("/v1/datasets/d/examples/9223372036854775807").status_code == 404
    assert notes.delete("/v1/datasets/d/examples/-9223372036854775808").status_code == 404


@pytest.mark.parametrize("url", [f"/v1/datasets/d/examples?cursor={TOO_BIG}", "/v1/datasets/d/examples?cursor=-2"])
def test_issue_13_case_5_cursors_past_bigint_are_a_422(notes: TestClient, url: str) -> None:
    assert problems(notes.get(url)) == {"cursor": "not a cursor this API gave out"}


def test_issue_13_case_5_a_hand_made_batch_cursor_past_bigint_is_a_422(notes: TestClient) -> None:
    from app.training.batches.cursor import Cursor

    forged = Cursor(dataset=10**20, snapshot=None, split=None, seed=None, n=10**20, position=0).encode()

    assert problems(notes.get("/v1/datasets/d/batches", params={"cursor": forged})) == {
        "cursor": "not a cursor this API gave out (garbled or edited)"
    }


# Case 6 --------------------------------------------------------------------------------------------------------

TOO_DEEP_TO_PARSE = "JSON nested too deeply to parse"


@pytest.mark.parametrize("path", ["/v1/collections", "/v1/datasets/d/examples", "/v1/collections/notes/documents"])
def test_issue_13_case_6_a_body_nested_1000_deep_is_a_422(notes: TestClient, path: str) -> None:
    body = "[" * 1000 + "]" * 1000

    assert problems(notes.post(path, content=body.encode(), headers=JSON)) == {"body": TOO_DEEP_TO_PARSE}


def test_issue_13_case_6_a_jsonl_line_nested_3000_deep_in_an_import_names_the_line(notes: TestClient) -> None:
    lines = '{"text": "fine", "label": "x"}\n' + "[" * 3000 + "]" * 3000 + "\n"

    response = notes.post(
        "/v1/datasets/d/import", content=lines.encode(), headers={"content-type": "application/jsonl"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    assert response.json()["problems"] == [{"line": 2, "field": "", "reason": "is JSON nested too deeply to parse"}]


def test_issue_13_case_6_a_jsonl_line_nested_3000_deep_in_an_upload_names_the_line(notes: TestClient) -> None:
    lines = '{"text": "fine"}\n{"text": "x", "metadata": ' + "[" * 3000 + "]" * 3000 + "}\n"

    response = notes.post("/v1/collections/notes/documents", files={"files": ("deep.jsonl", lines.encode())})

    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"] == f"deep.jsonl line 2: line: {TOO_DEEP_TO_PARSE}"


def test_issue_13_case_6_a_lone_surrogate_in_an_example_is_a_422(notes: TestClient) -> None:
    body = b'[{"text": "a\\ud800b", "label": "1"}]'

    response = notes.post("/v1/datasets/d/examples", content=body, headers=JSON)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["problems"] == [{"line": None, "field": "body[0]", "reason": SURROGATE}]


# Cases 8 and 9: one limit on nesting on the way in -----------------------------------------------------------

TOO_DEEP = "is nested deeper than 32 levels (MEMORA_MAX_JSON_DEPTH)"


@pytest.mark.parametrize("levels", [33, 900])
def test_issue_13_case_8_metadata_nested_past_the_limit_is_a_422(notes: TestClient, levels: int) -> None:
    metadata = nested(levels)
    collection = {"name": "x", "embedding_provider": "hashing", "dimensions": 8, "metadata": metadata}

    responses = {
        "collection": notes.post("/v1/collections", json=collection),
        "collection patch": notes.patch("/v1/collections/notes", json={"metadata": metadata}),
        "dataset": notes.post("/v1/datasets", json={"name": "x", "task": "chat", "metadata": metadata}),
        "search filter": notes.post("/v1/collections/notes/search", json={"query": "a", "filter": metadata}),
    }

    assert {what: problems(r) for what, r in responses.items()} == {
        what: {"body.filter" if what == "search filter" else "body.metadata": f"Value error, {TOO_DEEP}"}
        for what in responses
    }


def test_issue_13_case_8_metadata_at_the_limit_is_stored_and_read_back_whole(notes: TestClient) -> None:
    response = notes.post("/v1/datasets", json={"name": "x", "task": "chat", "metadata": nested(32)})

    assert response.status_code == 201, response.text
    assert notes.get("/v1/datasets/x").json()["metadata"] == nested(32)


def test_issue_13_case_9_documents_and_examples_nested_past_the_limit_are_a_422(notes: TestClient) -> None:
    document = notes.post("/v1/collections/notes/documents", json={"content": "hi", "metadata": nested(300)})
    jsonl = json.dumps({"text": "hi", "metadata": nested(300)}) + "\n"
    uploaded = notes.post("/v1/collections/notes/documents", files={"files": ("deep.jsonl", jsonl.encode())})
    example = notes.post("/v1/datasets/d/examples", json={"text": "hi", "label": "x", "metadata": nested(300)})
    deep_field = notes.post("/v1/datasets/d/examples", json={"text": "hi", "label": nested(40)})

    assert problems(document) == {"documents[0].metadata": TOO_DEEP}
    assert uploaded.json()["error"]["message"] == f"deep.jsonl line 1: metadata: {TOO_DEEP}"
    assert example.json()["error"]["details"]["problems"] == [{"line": None, "field": "body", "reason": TOO_DEEP}]
    assert deep_field.json()["error"]["details"]["problems"] == [{"line": None, "field": "body", "reason": TOO_DEEP}]


# Case 9: rows written by other means (psql) never break a read -----------------------------------------------


@pytest.mark.parametrize("levels", [300, 3000])
def test_issue_13_case_9_a_row_nested_deep_by_sql_does_not_break_reads(
    api: TestClient, db: Session, levels: int
) -> None:
    """Inserted with SQL, past what the API takes: every read that includes it answers, with the value cut at
    READ_JSON_DEPTH, and the other rows whole."""
    collection = make_collection(db, name="notes", embedding_provider="hashing", embedding_model="hashing")
    plain = make_document(db, collection, external_id="plain", metadata_={"team": "hr"})
    deep = make_document(db, collection, external_id="deep", content="parental leave policy")
    make_chunk(db, plain, text="Content of plain: parental leave")
    make_chunk(db, deep)
    dataset = make_dataset(db, name="d")
    make_example(db, dataset, input={"text": "plain"}, split="train")
    deep_json = "(repeat('{\"a\": ', :n) || '1' || repeat('}', :n))::jsonb"
    db.execute(
        sql(
            "INSERT INTO memora.example (dataset_id, format, input, label, split, metadata) "
            f"VALUES (:id, 'classification', '{{\"text\": \"deep\"}}', 'ham', 'train', {deep_json})"
        ),
        {"n": levels, "id": dataset.id},
    )
    db.execute(sql(f"UPDATE memora.document SET metadata = {deep_json} WHERE id = :id"), {"n": levels, "id": deep.id})
    for table, row in (("dataset", dataset.id), ("collection", collection.id)):
        db.execute(sql(f"UPDATE memora.{table} SET metadata = {deep_json} WHERE id = :id"), {"n": levels, "id": row})
    db.expire_all()  # the API shares this session: it reads the rows as SQL left them (next_seq, metadata)

    documents = api.get("/v1/collections/notes/documents")
    one = api.get("/v1/collections/notes/documents/deep")
    search = api.post(
        "/v1/collections/notes/search", json={"query": "parental leave", "mode": "text", "include": ["metadata"]}
    )
    examples = api.get("/v1/datasets/d/examples")
    batch = api.get("/v1/datasets/d/batches", params={"fields": "id,metadata"})
    export = api.get("/v1/datasets/d/export", params={"format": "jsonl"})
    lists = {"collections": api.get("/v1/collections"), "datasets": api.get("/v1/datasets")}
    reads = {"documents": documents, "one": one, "search": search, "examples": examples, "batch": batch,
             "export": export, **lists}  # fmt: skip

    assert {what: r.status_code for what, r in reads.items()} == dict.fromkeys(reads, 200)
    by_id = {d["external_id"]: d["metadata"] for d in documents.json()["items"]}
    assert by_id["plain"] == {"team": "hr"}
    assert depth(by_id["deep"]) == READ_JSON_DEPTH  # the last object kept holds the note
    assert depth(one.json()["metadata"]) == READ_JSON_DEPTH
    found = {r["external_id"]: r["metadata"] for r in search.json()["results"]}
    assert found["plain"] == {"team": "hr"}
    assert depth(found["deep"]) == READ_JSON_DEPTH
    assert [depth(e["metadata"]) for e in examples.json()["items"]] == [0, READ_JSON_DEPTH]
    assert [depth(e["metadata"]) for e in batch.json()["items"]] == [0, READ_JSON_DEPTH]
    assert len(export.text.splitlines()) == 2
    assert depth(api.get("/v1/collections/notes").json()["metadata"]) == READ_JSON_DEPTH
    assert CUT in json.dumps(one.json()["metadata"])


# Sizes: keys of btree indexes, and strings without a natural size -------------------------------------------


def test_an_external_id_past_the_btree_key_limit_is_a_422(notes: TestClient) -> None:
    """1024 CJK characters are 3,072 bytes: past what a btree entry takes, which used to fail the insert (a 500)."""
    external_id = "".join(chr(0x4E00 + i) for i in range(1024))

    response = notes.post("/v1/collections/notes/documents", json={"content": "hi", "external_id": external_id})

    assert problems(response) == {"documents[0].external_id": "is longer than 1024 bytes of UTF-8"}


def test_a_title_or_source_past_its_limit_is_a_422(notes: TestClient) -> None:
    response = notes.post("/v1/collections/notes/documents", json={"content": "hi", "title": "t" * 1001, "source": "s"})

    assert problems(response) == {"documents[0].title": "is longer than 1000 characters"}


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({"text": "a", "label": "x" * 1025}, "label", "is longer than 1024 bytes of UTF-8"),
        ({"text": "a", "labels": ["ok", "é" * 600]}, "labels[1]", "is longer than 1024 bytes of UTF-8"),
        ({"text": "a", "labels": [str(i) for i in range(1001)]}, "labels", "has 1001 labels; at most 1000"),
    ],
)
def test_labels_past_their_limits_are_a_422(notes: TestClient, record: dict[str, Any], field: str, reason: str) -> None:
    """A label is a key of a btree index: one of 10,000 characters used to fail the insert (a 500)."""
    response = notes.post("/v1/datasets/d/examples", json=[record])

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["problems"] == [
        {"line": None, "field": f"body[0].{field}", "reason": reason}
    ]


def test_issue_13_case_6_csv_cells_nested_deep_are_a_problem_of_their_line(notes: TestClient) -> None:
    """A JSON cell (metadata) nested 3000 deep does not parse: it stays text, as any cell that is not JSON, and its
    line is refused for that; nested 40 deep it parses, and is past the depth limit."""
    deep, too_deep = "[" * 3000 + "]" * 3000, json.dumps(nested(40)).replace('"', '""')
    rows = f'text,label,metadata\nfirst,x,"{deep}"\nsecond,x,"{too_deep}"\nthird,x,"{{""a"": 1}}"\n'

    response = notes.post("/v1/datasets/d/import", content=rows.encode(), headers={"content-type": "text/csv"})

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1, response.json()
    problems = {p["line"]: p["reason"] for p in response.json()["problems"]}
    assert sorted(problems) == [2, 3]
    assert problems[3] == TOO_DEEP
