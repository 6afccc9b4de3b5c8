"""/v1/datasets over HTTP: datasets, examples in as JSON or streamed files, reports, paging, deletes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.training.imports import importer
from tests.schema import sql

CHAT = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
}


def chat(question: str, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def jsonl(*records: Any) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


@pytest.fixture
def dataset(api: TestClient) -> str:
    assert api.post("/v1/datasets", json={"name": "ds", "task": "chat"}).status_code == 201
    return "ds"


def test_create_list_get_and_delete(api: TestClient) -> None:
    created = api.post(
        "/v1/datasets",
        json={"name": "spam", "task": "classification", "split": {"ratios": {"train": 0.9, "test": 0.1}, "seed": 7}},
    )

    assert created.status_code == 201
    body = created.json()
    assert (body["name"], body["task"], body["examples"], body["split"]["seed"]) == ("spam", "classification", 0, 7)
    assert body["split"]["ratios"] == {"train": 0.9, "test": 0.1}
    assert [d["name"] for d in api.get("/v1/datasets").json()] == ["spam"]
    assert api.get("/v1/datasets/spam").json()["task"] == "classification"
    assert api.delete("/v1/datasets/spam").status_code == 204
    assert api.get("/v1/datasets/spam").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "bad name", "task": "chat"}, "body.name"),
        ({"name": "x", "task": "poetry"}, "body.task"),
        ({"name": "x", "task": "chat", "split": {"ratios": {"train": 0.5, "test": 0.1}}}, "body.split.ratios"),
        ({"name": "x", "task": "chat", "split": {"ratios": {"train": 1.5, "test": -0.5}}}, "body.split.ratios.train"),
        ({"name": "x", "task": "chat", "split": {"ratios": {"dev": 1.0}}}, "body.split.ratios.dev"),
        # Text PostgreSQL cannot store is named, not a 500 (app/db/storable.py).
        ({"name": "x", "task": "chat", "description": "a\u0000"}, "body.description"),
        ({"name": "x", "task": "chat", "metadata": {"note": "a\u0000b"}}, "body.metadata"),
    ],
)
def test_bad_datasets_are_422_naming_the_field(api: TestClient, body: dict[str, Any], field: str) -> None:
    response = api.post("/v1/datasets", json=body)

    assert response.status_code == 422
    assert any(p["field"].startswith(field) for p in response.json()["error"]["details"]), response.json()


def test_a_taken_name_is_409(api: TestClient, dataset: str) -> None:
    response = api.post("/v1/datasets", json={"name": dataset, "task": "qa"})

    assert response.status_code == 409
    assert response.json()["error"]["details"] == [{"field": "name", "reason": "is taken"}]


def test_json_examples_are_stored_with_a_report(api: TestClient, dataset: str) -> None:
    response = api.post(f"/v1/datasets/{dataset}/examples", json=[CHAT, chat("2+2?", "4")])

    assert response.status_code == 201
    report = response.json()
    assert (report["received"], report["stored"], report["duplicates"], report["invalid"]) == (2, 2, 0, 0)
    assert report["formats"] == {"chat": 2}
    assert report["tokens"]["min"] > 0
    assert report["estimated_epoch_tokens"] >= report["tokens"]["max"]
    page = api.get(f"/v1/datasets/{dataset}/examples").json()
    assert [item["record"] for item in page["items"]] == [CHAT, chat("2+2?", "4")]
    assert [item["seq"] for item in page["items"]] == [0, 1]
    assert all(item["split"] in {"train", "validation", "test"} for item in page["items"])


def test_strict_mode_stores_nothing_and_names_every_problem(api: TestClient, dataset: str) -> None:
    bad_role = {"messages": [{"role": "bot", "content": "hi"}, {"role": "assistant", "content": "x"}]}
    no_answer = {"messages": [{"role": "user", "content": "hi"}]}

    response = api.post(f"/v1/datasets/{dataset}/examples", json=[CHAT, bad_role, no_answer])

    assert response.status_code == 422
    report = response.json()["error"]["details"]
    fields = [p["field"] for p in report["problems"]]
    assert any(f.startswith("body[1].messages[0].role") for f in fields), fields
    assert any(f.startswith("body[2]") for f in fields), fields
    assert (report["stored"], report["invalid"]) == (0, 2)
    assert api.get(f"/v1/datasets/{dataset}").json()["examples"] == 0


def test_file_import_skips_bad_lines_and_reports_them_by_line(api: TestClient, dataset: str) -> None:
    body = jsonl(CHAT, b"{not json", {"messages": []}, chat("a?", "b"), b"", chat("c?", "d"))

    response = api.post(
        f"/v1/datasets/{dataset}/import", content=body, headers={"content-type": "application/x-ndjson"}
    )

    assert response.status_code == 200
    report = response.json()
    assert (report["received"], report["stored"], report["invalid"]) == (5, 3, 2)
    assert sorted({p["line"] for p in report["problems"]}) == [2, 3]
    assert api.get(f"/v1/datasets/{dataset}").json()["examples"] == 3


def test_reimporting_the_same_file_stores_nothing_new(api: TestClient, dataset: str) -> None:
    body = jsonl(*(chat(f"q{i}?", f"a{i}") for i in range(20)), chat("q0?", "a0"))
    url = f"/v1/datasets/{dataset}/import"
    headers = {"content-type": "application/x-ndjson"}

    first = api.post(url, content=body, headers=headers).json()
    again = api.post(url, content=body, headers=headers).json()

    assert (first["stored"], first["duplicates"]) == (20, 1)
    assert (again["stored"], again["duplicates"]) == (0, 21)
    assert api.get(f"/v1/datasets/{dataset}").json()["examples"] == 20


def test_a_strict_import_failing_half_way_leaves_the_dataset_as_it_was(
    api: TestClient, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.post(f"/v1/datasets/{dataset}/examples", json=[CHAT])
    before = api.get(f"/v1/datasets/{dataset}/examples").json()
    monkeypatch.setattr(importer, "BATCH", 3)  # several batches are written before the bad line is read
    body = jsonl(*(chat(f"q{i}?", f"a{i}") for i in range(10)), {"messages": "oops"}, chat("last?", "x"))

    response = api.post(
        f"/v1/datasets/{dataset}/import?mode=strict", content=body, headers={"content-type": "application/jsonl"}
    )

    assert response.status_code == 422
    assert [p["line"] for p in response.json()["error"]["details"]["problems"]] == [11]
    assert api.get(f"/v1/datasets/{dataset}/examples").json() == before
    assert api.get(f"/v1/datasets/{dataset}").json()["examples"] == 1


def test_csv_classification_import_and_label_counts(api: TestClient) -> None:
    api.post("/v1/datasets", json={"name": "sms", "task": "classification"})
    csv_body = b"text,label\nwin a prize now,spam\nsee you at 5,ham\nlunch?,ham\n,ham\n"

    response = api.post("/v1/datasets/sms/import", files={"file": ("sms.csv", csv_body, "text/csv")})

    report = response.json()
    assert (report["stored"], report["invalid"]) == (3, 1)
    assert report["problems"][0]["line"] == 5
    assert report["label_counts"] == {"ham": 2, "spam": 1}
    assert api.get("/v1/datasets/sms/labels").json() == [{"label": "ham", "count": 2}, {"label": "spam", "count": 1}]
    assert [i["record"]["label"] for i in api.get("/v1/datasets/sms/examples?label=spam").json()["items"]] == ["spam"]


def test_squad_json_import(api: TestClient) -> None:
    api.post("/v1/datasets", json={"name": "squad", "task": "qa"})
    context = "Normandy is a region in France."
    squad = {
        "version": "v2.0",
        "data": [
            {
                "title": "Normandy",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {"id": "q1", "question": "Where is Normandy?", "is_impossible": False,
                             "answers": [{"text": "France", "answer_start": context.index("France")}]},
                            {"id": "q2", "question": "Where is it?", "is_impossible": False,
                             "answers": [{"text": "Spain", "answer_start": 3}]},
                        ],
                    }
                ],
            }
        ],
    }  # fmt: skip

    response = api.post(
        "/v1/datasets/squad/import", files={"file": ("dev.json", json.dumps(squad), "application/json")}
    )

    report = response.json()
    assert (report["stored"], report["invalid"]) == (1, 1)
    assert report["problems"][0]["field"].startswith("data[0].paragraphs[0].qas[1]")
    record = api.get("/v1/datasets/squad/examples").json()["items"][0]["record"]
    assert record["answers"] == {"text": ["France"], "answer_start": [context.index("France")]}


def test_tokenized_fields_are_integer_arrays(api: TestClient, db: Session) -> None:
    api.post("/v1/datasets", json={"name": "tok", "task": "custom"})
    record = {"input_ids": [101, 2054, 102], "attention_mask": [1, 1, 1], "start_positions": 1, "end_positions": 1}

    response = api.post("/v1/datasets/tok/examples", json=record)

    assert response.status_code == 201
    row = db.execute(
        sql("SELECT pg_typeof(input_ids)::text AS kind, input_ids, start_positions FROM memora.example")
    ).one()
    assert (row.kind, row.input_ids, row.start_positions) == ("integer[]", [101, 2054, 102], [1])


@pytest.mark.parametrize(
    ("content", "media_type", "status"),
    [
        (b"%PDF-1.4 binary", "application/pdf", 415),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "application/x-ndjson", 422),
        (b'{"a": 1}\n', "application/x-ndjson", 422),
    ],
)
def test_files_that_are_not_examples(
    api: TestClient, dataset: str, content: bytes, media_type: str, status: int
) -> None:
    response = api.post(f"/v1/datasets/{dataset}/import", content=content, headers={"content-type": media_type})

    assert response.status_code == status
    if status == 422:
        assert response.json()["error"]["details"]["problems"][0]["line"] == 1


def test_unknown_dataset_is_404(api: TestClient) -> None:
    assert api.post("/v1/datasets/nope/examples", json=CHAT).status_code == 404
    assert api.get("/v1/datasets/nope/examples").status_code == 404
    assert api.delete("/v1/datasets/nope").status_code == 404


def test_paging_with_a_cursor_and_bad_cursors(api: TestClient, dataset: str) -> None:
    api.post(f"/v1/datasets/{dataset}/examples", json=[chat(f"q{i}?", "a") for i in range(5)])

    first = api.get(f"/v1/datasets/{dataset}/examples?limit=2").json()
    second = api.get(f"/v1/datasets/{dataset}/examples?limit=2&cursor={first['next_cursor']}").json()

    assert [i["seq"] for i in first["items"] + second["items"]] == [0, 1, 2, 3]
    bad = api.get(f"/v1/datasets/{dataset}/examples?cursor=abc")
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "cursor"


def test_deleting_an_example_a_snapshot_holds_leaves_a_tombstone(api: TestClient, dataset: str, db: Session) -> None:
    api.post(f"/v1/datasets/{dataset}/examples", json=[chat("keep?", "yes"), chat("drop?", "no")])
    items = api.get(f"/v1/datasets/{dataset}/examples").json()["items"]
    db.execute(sql("SELECT memora.create_snapshot('ds', 'v1')"))

    assert api.delete(f"/v1/datasets/{dataset}/examples/{items[1]['id']}").status_code == 204

    assert [i["id"] for i in api.get(f"/v1/datasets/{dataset}/examples").json()["items"]] == [items[0]["id"]]
    assert api.get(f"/v1/datasets/{dataset}/examples/{items[1]['id']}").status_code == 404
    held = db.execute(
        sql("SELECT e.deleted_at IS NOT NULL AS tombstone FROM memora.snapshot_example s "
             "JOIN memora.example e ON (e.dataset_id, e.id) = (s.dataset_id, s.example_id) WHERE e.id = :id"),
        {"id": items[1]["id"]},
    ).one()  # fmt: skip
    assert held.tombstone
    # The same example imported again comes back to life, with its old id.
    again = api.post(f"/v1/datasets/{dataset}/examples", json=chat("drop?", "no")).json()
    assert again["stored"] == 1
    assert items[1]["id"] in [i["id"] for i in api.get(f"/v1/datasets/{dataset}/examples").json()["items"]]


def test_examples_link_to_the_documents_they_came_from(api: TestClient, dataset: str) -> None:
    api.post("/v1/collections", json={"name": "docs", "embedding_provider": "hashing"})
    api.post("/v1/collections/docs/documents", json={"external_id": "manual", "content": "Paris is in France."})
    linked = chat("Where is Paris?", "France.") | {"source": {"collection": "docs", "external_id": "manual"}}
    dangling = chat("Where?", "Nowhere.") | {"source": {"collection": "docs", "external_id": "missing"}}

    response = api.post(f"/v1/datasets/{dataset}/examples?mode=skip", json=[linked, dangling])

    assert response.json()["stored"] == 1
    assert response.json()["problems"][0]["field"] == "body[1].source"
    item = api.get(f"/v1/datasets/{dataset}/examples").json()["items"][0]
    assert item["source"] == {"collection": "docs", "external_id": "manual"}


def test_csv_columns_can_be_renamed_and_extra_ones_become_metadata(api: TestClient) -> None:
    api.post("/v1/datasets", json={"name": "sms", "task": "classification"})
    # The shape of ../shared/data/labeled/sms-spam.csv: a pandas index, the label in "spam", and a source column.
    csv_body = b',spam,text,origin\n0,0,"Ok lar... Joking wif u oni...",uk\n1,1,Free entry in 2 a wkly comp,uk\n'

    plain = api.post("/v1/datasets/sms/import", files={"file": ("sms.csv", csv_body, "text/csv")})
    renamed = api.post("/v1/datasets/sms/import?rename=label=spam", files={"file": ("sms.csv", csv_body, "text/csv")})
    bad = api.post("/v1/datasets/sms/import?rename=label", files={"file": ("sms.csv", csv_body, "text/csv")})

    assert plain.status_code == 422  # no label column: nothing is a classification record
    assert renamed.json()["label_counts"] == {"0": 1, "1": 1}
    items = api.get("/v1/datasets/sms/examples").json()["items"]
    assert [i["record"] for i in items] == [
        {"text": "Ok lar... Joking wif u oni...", "label": "0", "metadata": {"origin": "uk"}},
        {"text": "Free entry in 2 a wkly comp", "label": "1", "metadata": {"origin": "uk"}},
    ]
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "rename"


def test_a_dataset_with_snapshots_and_tombstones_can_be_deleted(api: TestClient, dataset: str, db: Session) -> None:
    api.post(f"/v1/datasets/{dataset}/examples", json=[chat("a?", "b"), chat("c?", "d")])
    db.execute(sql("SELECT memora.create_snapshot('ds', 'v1')"))
    first = api.get(f"/v1/datasets/{dataset}/examples").json()["items"][0]["id"]
    api.delete(f"/v1/datasets/{dataset}/examples/{first}")

    assert api.delete(f"/v1/datasets/{dataset}").status_code == 204

    assert db.execute(sql("SELECT count(*) FROM memora.example")).scalar() == 0
    assert db.execute(sql("SELECT count(*) FROM memora.snapshot_example")).scalar() == 0


def test_text_postgresql_cannot_store_is_a_problem_of_its_line(api: TestClient, dataset: str) -> None:
    body = jsonl(chat("fine?", "yes"), chat("nul \u0000 inside?", "no"), chat("back\\slash\ttab?", "kept"))

    response = api.post(f"/v1/datasets/{dataset}/import", content=body, headers={"content-type": "application/jsonl"})

    report = response.json()
    assert (report["stored"], report["invalid"], report["duplicates"]) == (2, 1, 0)
    assert report["formats"] == {"chat": 2}
    assert report["problems"][0]["line"] == 2
    assert "NUL" in report["problems"][0]["reason"]
    questions = [
        i["record"]["messages"][0]["content"] for i in api.get(f"/v1/datasets/{dataset}/examples").json()["items"]
    ]
    assert questions == ["fine?", "back\\slash\ttab?"]


def test_nan_in_a_record_is_a_problem_of_its_line(api: TestClient) -> None:
    api.post("/v1/datasets", json={"name": "tok", "task": "custom"})
    body = b'{"input_ids": [1, 2], "score": NaN}\n{"input_ids": [3], "score": 0.5}\n'

    report = api.post("/v1/datasets/tok/import", content=body, headers={"content-type": "application/jsonl"}).json()

    assert (report["stored"], report["invalid"]) == (1, 1)
    assert report["problems"][0]["line"] == 1
    assert "NaN" in report["problems"][0]["reason"]


def test_a_csv_answer_start_of_digits_that_int_does_not_read_is_a_problem_of_its_line(api: TestClient) -> None:
    """str.isdigit() is true for superscripts, which int() refuses, and "--3" passed a check that stripped every
    minus: the import was a 500 (found beside the fuzzer's ValueError in app/training/finetune, the same test)."""
    api.post("/v1/datasets", json={"name": "qa", "task": "qa"})
    rows = ["question,context,answer_text,answer_start", "Where?,In France.,France,3", "Where?,In Spain.,Spain,²",
            "Where?,In Italy.,Italy,--3"]  # fmt: skip
    csv_body = "".join(row + "\n" for row in rows).encode()

    response = api.post("/v1/datasets/qa/import", files={"file": ("qa.csv", csv_body, "text/csv")})

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["stored"], report["invalid"]) == (1, 2)
    assert [problem["line"] for problem in report["problems"]] == [3, 4]
    assert all("answer_start" in problem["field"] for problem in report["problems"])
