"""GET /v1/datasets/{name}/export: every format, snapshots and splits, the SQL lines against Python's, bad input."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings
from app.training.exports import parquet
from app.training.exports import service as export
from app.training.exports.lines import chat_line
from app.training.exports.schemas import Options
from app.training.formats import records
from tests.schema import sql

URL = "/v1/datasets/{}/export"

PLAIN = {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]}
SYSTEM = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ],
    "metadata": {"source": "handwritten", "rating": 4.5, "tags": ["math"]},
}
TOOLS = {
    "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "12°C"},
        {"role": "assistant", "content": "It is 12 °C in Oslo.", "weight": 1},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "The weather now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ],
    "parallel_tool_calls": False,
}
# Everything JSON escapes, and what it does not: quotes, backslashes, control characters, non-ASCII, U+2028.
TRICKY = {
    "messages": [
        {
            "role": "user",
            "content": 'Quote " backslash \\ new\nline\ttab \u0007bell \u001f é 中文 😀 </script> \u2028 \x7f',
        },
        {"role": "assistant", "content": [{"type": "text", "text": "in parts \\n"}]},
    ],
    "metadata": {"big": 12345678901234567890, "nested": {"b": 1, "a": [True, None]}},
}
COMPLETION = {"prompt": "2+2=", "completion": "4"}
SPAM = {"text": 'Win "money", now', "label": "spam"}
MULTI = {"text": "cheap pills\nand more", "labels": ["spam", "pharma"]}
CONTEXT = "Hamlet is a play by William Shakespeare."
QA = {
    "question": "Who wrote Hamlet?",
    "context": CONTEXT,
    "id": "q1",
    "title": "Hamlet",
    "answers": {"text": ["William Shakespeare"], "answer_start": [CONTEXT.index("William")]},
}
UNANSWERABLE = {
    "question": "Who wrote Macbeth?",
    "context": CONTEXT,
    "answers": {"text": [], "answer_start": []},
    "is_impossible": True,
}
PAIRS = {"query": "capital of france", "positive": "Paris is the capital of France."}
TRIPLETS = {"anchor": "a tall tower", "positive": "The Eiffel Tower is 330 m tall.", "negative": "Bananas are yellow."}
CUSTOM = {"input_ids": [101, 7592, 102], "attention_mask": [1, 1, 1], "note": "tokenized", "extra": {"k": [1, 2]}}

CHAT_ABLE = [PLAIN, SYSTEM, TOOLS, TRICKY, COMPLETION, SPAM, MULTI, QA]
EVERYTHING = [*CHAT_ABLE, UNANSWERABLE, PAIRS, TRIPLETS, CUSTOM]


def make(api: TestClient, name: str, records: list[dict[str, Any]], task: str = "chat") -> None:
    assert api.post("/v1/datasets", json={"name": name, "task": task}).status_code == 201
    added = api.post(f"/v1/datasets/{name}/examples", json=records)
    assert added.status_code == 201, added.text
    assert added.json()["stored"] == len(records)


def get(api: TestClient, name: str, **params: Any) -> Any:
    return api.get(URL.format(name), params=params)


def lines(response: Any) -> list[Any]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def rows(db: Session, name: str) -> list[dict[str, Any]]:
    """The live rows of a dataset in seq order, as the exporters read them."""
    result = db.execute(
        sql(
            "SELECT e.id, e.split, e.format, e.input, e.output, e.label, e.labels, e.input_ids, e.attention_mask, "
            "e.token_type_ids, e.start_positions, e.end_positions, e.metadata "
            "FROM memora.example e JOIN memora.dataset d ON d.id = e.dataset_id "
            "WHERE d.name = :name AND e.deleted_at IS NULL ORDER BY e.seq"
        ),
        {"name": name},
    )
    return [dict(row) for row in result.mappings()]


def run(db: Session, settings: Settings, name: str, **options: Any) -> bytes:
    job = export.prepare(db, name, Options(**options))
    return b"".join(job.chunks(db, settings))


def test_openai_chat_lines_are_exact(api: TestClient) -> None:
    make(api, "chat", [PLAIN, SYSTEM, TOOLS])

    response = get(api, "chat", format="openai-chat")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jsonl"
    assert response.headers["content-disposition"] == 'attachment; filename="chat-openai-chat.jsonl"'
    assert response.headers["x-memora-examples"] == "3"
    assert response.text.splitlines()[:2] == [
        '{"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]}',
        '{"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"}, '
        '{"role": "assistant", "content": "4"}]}',
    ]
    assert lines(response)[2] == TOOLS  # tools and parallel_tool_calls kept, weight kept for fine-tuning
    assert response.text.endswith("\n")


def test_sql_chat_lines_equal_python_lines_byte_for_byte(api: TestClient, db: Session, settings: Settings) -> None:
    make(api, "mixed", EVERYTHING)

    exported = run(db, settings, "mixed", format="jsonl")
    expected = "".join(json.dumps(records.to_record(row), ensure_ascii=False) + "\n" for row in rows(db, "mixed"))
    assert exported == expected.encode()

    make(api, "chatty", CHAT_ABLE)
    exported = run(db, settings, "chatty", format="openai-chat")
    expected = "".join(chat_line(row) + "\n" for row in rows(db, "chatty"))
    assert exported == expected.encode()
    assert exported.decode().count("\n") == len(CHAT_ABLE)


def test_openai_chat_of_every_chat_able_format(api: TestClient) -> None:
    make(api, "forms", [COMPLETION, SPAM, MULTI, QA, UNANSWERABLE])

    response = get(api, "forms", format="openai-chat")

    assert response.headers["x-memora-examples"] == "4"  # the question without an answer has no chat form
    assert [line["messages"] for line in lines(response)] == [
        [{"role": "user", "content": "2+2="}, {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": 'Win "money", now'}, {"role": "assistant", "content": "spam"}],
        [{"role": "user", "content": "cheap pills\nand more"}, {"role": "assistant", "content": "spam, pharma"}],
        [
            {"role": "user", "content": f"Who wrote Hamlet?\n\n{CONTEXT}"},
            {"role": "assistant", "content": "William Shakespeare"},
        ],
    ]


@pytest.mark.parametrize("record", [PAIRS, TRIPLETS, CUSTOM])
def test_openai_chat_refuses_formats_without_a_chat_form(api: TestClient, record: dict[str, Any]) -> None:
    make(api, "nochat", [PLAIN, record])

    response = get(api, "nochat", format="openai-chat")

    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["field"] == "format"
    assert records.detect_format(record) in detail["reason"]


def test_jsonl_re_imports_as_the_same_examples(api: TestClient, db: Session) -> None:
    make(api, "source", EVERYTHING)

    body = get(api, "source", format="jsonl").content
    assert api.post("/v1/datasets", json={"name": "copy", "task": "chat"}).status_code == 201
    imported = api.post("/v1/datasets/copy/import", content=body, headers={"content-type": "application/x-ndjson"})

    assert imported.json()["stored"] == len(EVERYTHING), imported.text
    hashes = (
        "SELECT e.content_hash FROM memora.example e JOIN memora.dataset d ON d.id = e.dataset_id WHERE d.name = :n"
    )
    assert sorted(db.scalars(sql(hashes), {"n": "copy"})) == sorted(db.scalars(sql(hashes), {"n": "source"}))
    assert json.loads(body.splitlines()[1]) == SYSTEM  # metadata comes along when there is some


def test_split_and_snapshot(api: TestClient, db: Session) -> None:
    make(api, "frozen", [{"text": f"text number {i}", "label": "odd" if i % 2 else "even"} for i in range(40)])
    db.execute(sql("SELECT memora.create_snapshot('frozen', 'v1')"))
    before = get(api, "frozen", format="jsonl", snapshot="v1").content
    train = get(api, "frozen", format="jsonl", split="train")
    all_rows = rows(db, "frozen")

    first = all_rows[0]["id"]
    assert api.delete(f"/v1/datasets/frozen/examples/{first}").status_code == 204  # a tombstone: v1 holds it
    added = api.post("/v1/datasets/frozen/examples", json={"text": "a new one", "label": "even"})
    assert added.status_code == 201
    after = get(api, "frozen", format="jsonl", snapshot="v1")
    live = get(api, "frozen", format="jsonl").content

    assert after.content == before
    assert after.headers["content-disposition"] == 'attachment; filename="frozen-v1-jsonl.jsonl"'
    assert before.decode().count("\n") == 40
    assert live.decode().count("\n") == 40
    assert b"a new one" in live
    assert b"a new one" not in before
    assert b'"text number 0"' in before
    assert b'"text number 0"' not in live
    expected_train = [records.to_record(row) for row in all_rows if row["split"] == "train"]
    assert lines(train) == expected_train
    assert 0 < len(expected_train) < 40
    assert train.headers["x-memora-examples"] == str(len(expected_train))
    snapshot_train = lines(get(api, "frozen", format="jsonl", snapshot="v1", split="train"))
    assert snapshot_train == expected_train


def test_snapshot_uses_its_frozen_split(api: TestClient, db: Session, settings: Settings) -> None:
    make(api, "resplit", [{"text": f"text {i}", "label": "x"} for i in range(20)])
    db.execute(sql("SELECT memora.create_snapshot('resplit', 'v1')"))
    # Splits may change on live examples (a new split rule); the snapshot keeps the one it froze.
    db.execute(sql("UPDATE memora.example SET split = 'test' WHERE dataset_id = (SELECT id FROM memora.dataset "
                    "WHERE name = 'resplit')"))  # fmt: skip

    parquet = pq.read_table(io.BytesIO(run(db, settings, "resplit", format="parquet", snapshot="v1")))
    frozen = db.execute(
        sql("SELECT e.id, s.split FROM memora.snapshot_example s JOIN memora.example e ON e.id = s.example_id "
             "JOIN memora.snapshot n ON n.id = s.snapshot_id WHERE n.name = 'v1' ORDER BY s.seq")
    ).all()  # fmt: skip

    assert parquet.column("example_id").to_pylist() == [row.id for row in frozen]
    assert parquet.column("split").to_pylist() == [row.split for row in frozen]
    assert set(parquet.column("split").to_pylist()) != {"test"}


def test_parquet_reads_back(api: TestClient, db: Session) -> None:
    make(api, "arrow", [PLAIN, SYSTEM, SPAM, MULTI, QA, CUSTOM])

    response = get(api, "arrow", format="parquet")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["content-disposition"] == 'attachment; filename="arrow-parquet.parquet"'
    table = pq.read_table(io.BytesIO(response.content))
    assert table.schema.names == [
        "example_id", "split", "format", "messages", "tools", "parallel_tool_calls", "functions", "text", "id",
        "title", "question", "context", "answers", "is_impossible", "extra", "note", "label", "labels", "input_ids",
        "attention_mask", "token_type_ids", "start_positions", "end_positions", "metadata",
    ]  # fmt: skip
    assert table.schema.field("input_ids").type.value_type == pa.int32()
    assert table.schema.field("labels").type.value_type == pa.string()
    assert table.schema.field("example_id").type == pa.int64()
    got = table.to_pylist()
    source = rows(db, "arrow")
    assert [row["example_id"] for row in got] == [row["id"] for row in source]
    assert [row["split"] for row in got] == [row["split"] for row in source]
    assert json.loads(got[0]["messages"]) == PLAIN["messages"]
    assert got[0]["tools"] is None
    assert json.loads(got[1]["metadata"]) == SYSTEM["metadata"]
    assert (got[2]["text"], got[2]["label"], got[2]["labels"]) == (SPAM["text"], "spam", None)
    assert (got[3]["label"], got[3]["labels"]) == (None, ["spam", "pharma"])
    assert (got[4]["id"], got[4]["question"], got[4]["context"]) == ("q1", QA["question"], CONTEXT)
    assert json.loads(got[4]["answers"]) == QA["answers"]
    custom = got[5]
    assert (custom["input_ids"], custom["attention_mask"], custom["token_type_ids"]) == (
        [101, 7592, 102],
        [1, 1, 1],
        None,
    )
    assert (custom["note"], json.loads(custom["extra"]), custom["metadata"]) == ("tokenized", {"k": [1, 2]}, "{}")


def test_parquet_row_groups_stream(
    api: TestClient, db: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(api, "groups", [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(25)], task="completion")
    monkeypatch.setattr(parquet, "ROW_GROUP", 10)

    job = export.prepare(db, "groups", Options("parquet"))
    blocks = list(job.chunks(db, settings))

    file = pq.ParquetFile(io.BytesIO(b"".join(blocks)))
    assert file.metadata.num_row_groups == 3
    assert file.metadata.num_rows == 25
    assert len([b for b in blocks if b]) >= 3  # each row group leaves as soon as it is written
    assert file.read().column("prompt").to_pylist() == [f"p{i}" for i in range(25)]


def test_csv_for_classification(api: TestClient) -> None:
    make(api, "labels", [SPAM, MULTI], task="classification")

    response = get(api, "labels", format="csv")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert list(csv.reader(io.StringIO(response.text))) == [
        ["text", "label"],
        [SPAM["text"], "spam"],
        [MULTI["text"], "spam|pharma"],
    ]


def test_csv_refuses_other_formats(api: TestClient) -> None:
    make(api, "notcsv", [SPAM, PLAIN])

    response = get(api, "notcsv", format="csv")

    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {"field": "format", "reason": "csv takes classification examples; this export has 1 chat"}
    ]


def test_openai_batch_chat_and_embeddings(api: TestClient, db: Session) -> None:
    make(api, "label-me", [SYSTEM, TOOLS, SPAM])
    ids = [row["id"] for row in rows(db, "label-me")]

    chat = lines(get(api, "label-me", format="openai-batch", model="gpt-4o-mini"))
    embeddings = lines(get(api, "label-me", format="openai-batch", kind="embeddings", model="text-embedding-3-small"))

    assert [line["custom_id"] for line in chat] == [f"label-me-{i}" for i in ids]
    assert {(line["method"], line["url"]) for line in chat} == {("POST", "/v1/chat/completions")}
    assert chat[0]["body"] == {"model": "gpt-4o-mini", "messages": SYSTEM["messages"][:2]}
    # The final assistant turn is what gets labeled; tools come along; weight is for fine-tuning only.
    assert chat[1]["body"] == {
        "model": "gpt-4o-mini",
        "messages": TOOLS["messages"][:3],
        "tools": TOOLS["tools"],
        "parallel_tool_calls": False,
    }
    assert chat[2]["body"]["messages"] == [{"role": "user", "content": SPAM["text"]}]
    assert {(line["method"], line["url"]) for line in embeddings} == {("POST", "/v1/embeddings")}
    assert [line["body"] for line in embeddings] == [
        {"model": "text-embedding-3-small", "input": "2+2?\n4"},
        {"model": "text-embedding-3-small", "input": records.example_text(rows(db, "label-me")[1])},
        {"model": "text-embedding-3-small", "input": f"{SPAM['text']}"},
    ]


def test_pairs_and_triplets_without_mining(api: TestClient) -> None:
    with_list = {"query": "sky colour", "positive": "The sky is blue.", "negative": ["Grass is green.", "Snow."]}
    make(api, "st", [PAIRS, TRIPLETS, QA, with_list], task="pairs")

    pairs = lines(get(api, "st", format="pairs"))
    triplets = lines(get(api, "st", format="triplets"))

    assert pairs == [
        {"anchor": PAIRS["query"], "positive": PAIRS["positive"]},
        {"anchor": TRIPLETS["anchor"], "positive": TRIPLETS["positive"]},
        {"anchor": QA["question"], "positive": CONTEXT},
        {"anchor": "sky colour", "positive": "The sky is blue."},
    ]
    assert triplets == [
        TRIPLETS,
        {"anchor": "sky colour", "positive": "The sky is blue.", "negative": "Grass is green."},
        {"anchor": "sky colour", "positive": "The sky is blue.", "negative": "Snow."},
    ]


def test_an_empty_export_is_an_empty_file(api: TestClient) -> None:
    assert api.post("/v1/datasets", json={"name": "empty", "task": "chat"}).status_code == 201

    for fmt in ("openai-chat", "jsonl", "csv", "pairs"):
        response = get(api, "empty", format=fmt)
        assert (response.status_code, response.headers["x-memora-examples"]) == (200, "0")
        assert response.content == (b"text,label\n" if fmt == "csv" else b"")
    table = pq.read_table(io.BytesIO(get(api, "empty", format="parquet").content))
    assert table.num_rows == 0


def test_unknown_dataset_is_404(api: TestClient) -> None:
    response = get(api, "nowhere", format="openai-chat")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no dataset named 'nowhere'"


@pytest.mark.parametrize(
    ("params", "status", "field", "reason"),
    [
        ({}, 422, "format", "is required"),
        ({"format": "xml"}, 422, "format", "unknown format 'xml'"),
        ({"format": "jsonl", "split": "dev"}, 422, "split", "unknown split 'dev'"),
        ({"format": "pairs", "negatives": 2, "collection": "kb"}, 422, "negatives", "triplets"),
        ({"format": "triplets", "negatives": 2}, 422, "collection", "needs the collection"),
        ({"format": "triplets", "collection": "kb"}, 422, "negatives", "how many"),
        ({"format": "triplets", "negatives": 101, "collection": "kb"}, 422, "negatives", "between 0 and 100"),
        ({"format": "openai-batch"}, 422, "model", "needs the model"),
        ({"format": "openai-batch", "model": "m", "kind": "images"}, 422, "kind", "unknown kind"),
        ({"format": "jsonl", "snapshot": "v9"}, 404, None, "v9"),
        ({"format": "triplets", "negatives": 2, "collection": "nowhere"}, 404, None, "no collection named 'nowhere'"),
    ],
)
def test_bad_parameters(api: TestClient, params: dict[str, Any], status: int, field: str | None, reason: str) -> None:
    make(api, "ok", [PAIRS])

    response = get(api, "ok", **params)

    assert response.status_code == status, response.text
    error = response.json()["error"]
    if field is None:
        assert reason in error["message"]
    else:
        assert error["details"][0]["field"] == field
        assert reason in error["details"][0]["reason"]
