"""`memora finetune start|status|list` against the loopback OpenAI-compatible server, on a database of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Dataset, Example, FinetuneJob, Snapshot
from app.training.finetune import client as finetune_client
from app.training.finetune import service as finetune
from tests.conftest import sqlalchemy_engine
from tests.openai_server import OpenAIServer, trained_tokens
from tests.schema import sql

KEY = "sk-test-finetune-0123456789"
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]
TOOL_CHAT = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
    {"role": "assistant", "content": "It is 18 degrees and sunny."},
]  # fmt: skip


def chat(i: int, split: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"{split} question {i}?"}, {"role": "assistant", "content": f"answer {i}."}]
    return {"format": "chat", "split": split, "input": {"messages": messages}}


def turn(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


# The train split in snapshot order, each with the line the chat export must give it.
TRAIN = [
    *((chat(i, "train"), {"messages": chat(i, "train")["input"]["messages"]}) for i in range(9)),
    ({"format": "chat", "split": "train", "input": {"messages": TOOL_CHAT, "tools": TOOLS}},
     {"messages": TOOL_CHAT, "tools": TOOLS}),
    ({"format": "completion", "split": "train", "input": {"prompt": "Say hi"}, "output": {"completion": "hi"}},
     {"messages": turn("Say hi", "hi")}),
    ({"format": "classification", "split": "train", "input": {"text": "Refund me now"}, "label": "billing"},
     {"messages": turn("Refund me now", "billing")}),
    ({"format": "qa", "split": "train", "input": {"question": "Who?", "context": "Ada wrote it."},
      "output": {"answers": {"text": ["Ada"], "answer_start": [0]}}},
     {"messages": turn("Who?\n\nAda wrote it.", "Ada")}),
    ({"format": "qa", "split": "train", "input": {"question": "Why?", "context": "Nobody knows."},
      "output": {"answers": {"text": [], "answer_start": []}, "is_impossible": True}},
     None),  # no answer, so no assistant message: left out
]  # fmt: skip
VALIDATION = [chat(i, "validation") for i in range(3)]
TEST = [chat(i, "test") for i in range(2)]


def memora(url: str, server: OpenAIServer | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    variables = {k: v for k, v in os.environ.items() if "OPENAI" not in k and not k.startswith("MEMORA_FINETUNE")}
    if server is not None:
        variables |= {"MEMORA_OPENAI_BASE_URL": server.base_url, "MEMORA_OPENAI_API_KEY": KEY}
    variables |= {"MEMORA_OPENAI_MAX_RETRIES": "2"} | env
    command = [sys.executable, "-m", "app", "--database-url", url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=variables)


def add_examples(engine: Engine, dataset: str, rows: list[dict[str, Any]]) -> None:
    with Session(engine) as db, db.begin():
        found = db.scalars(select(Dataset).where(Dataset.name == dataset)).one_or_none()
        if found is None:
            found = Dataset(name=dataset, task="chat")
            db.add(found)
            db.flush()
        db.add_all(Example(dataset_id=found.id, **row) for row in rows)


def snapshot(engine: Engine, dataset: str, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(sql("SELECT * FROM memora.create_snapshot(:d, :n)"), {"d": dataset, "n": name})


def jobs(engine: Engine) -> list[FinetuneJob]:
    with Session(engine) as db:
        return list(db.scalars(select(FinetuneJob).order_by(FinetuneJob.id)))


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(api_key=KEY) as started:
        yield started


@pytest.fixture
def support(fresh_db_url: str) -> Iterator[Engine]:
    """Dataset `support` with snapshot v1 (14 train, 3 validation, 2 test examples); after it was taken, one more
    train example came and one of v1's was deleted (a tombstone v1 still holds)."""
    engine = sqlalchemy_engine(fresh_db_url)
    add_examples(engine, "support", [row for row, _ in TRAIN] + VALIDATION + TEST)
    snapshot(engine, "support", "v1")
    add_examples(engine, "support", [chat(99, "train")])
    with engine.begin() as conn:
        first = select(func.min(Example.id)).scalar_subquery()
        conn.execute(update(Example).where(Example.id == first).values(deleted_at=func.now()))
    yield engine
    engine.dispose()


def lines(content: bytes) -> list[Any]:
    assert content.endswith(b"\n")
    return [json.loads(line) for line in content.split(b"\n")[:-1]]


def test_start_uploads_the_train_split_and_records_lineage(
    fresh_db_url: str, support: Engine, server: OpenAIServer
) -> None:
    result = memora(fresh_db_url, server, "finetune", "start", "-d", "support", "-s", "v1", "-m", "gpt-4o-mini",
                    "--suffix", "support", "--epochs", "2", "--json")  # fmt: skip

    assert result.returncode == 0, result.stderr
    train, validation = server.fine_tuning.files.values()
    assert (train.filename, train.purpose) == ("support-v1-train-openai-chat.jsonl", "fine-tune")
    assert lines(train.content) == [line for _, line in TRAIN if line is not None]
    assert validation.filename == "support-v1-validation-openai-chat.jsonl"
    assert lines(validation.content) == [{"messages": row["input"]["messages"]} for row in VALIDATION]
    (create,) = server.requests_to("/v1/fine_tuning/jobs")
    body = create.json()
    assert body["training_file"] == train.id
    assert body["validation_file"] == validation.id
    assert (body["model"], body["suffix"]) == ("gpt-4o-mini", "support")
    assert body["method"]["supervised"]["hyperparameters"] == {"n_epochs": 2}
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)
    (job,) = jobs(support)
    assert (job.dataset_name, job.snapshot_name, job.model, job.suffix) == ("support", "v1", "gpt-4o-mini", "support")
    assert (job.base_url, job.status) == (server.base_url, "validating_files")
    assert list(server.fine_tuning.jobs) == [job.provider_job_id]
    assert (job.training_file_id, job.validation_file_id) == (train.id, validation.id)
    with Session(support) as db:
        snap = db.scalars(select(Snapshot).join(Dataset).where(Dataset.name == "support", Snapshot.name == "v1")).one()
    assert (job.dataset_id, job.snapshot_id) == (snap.dataset_id, snap.id)
    assert json.loads(result.stdout)["provider_job_id"] == job.provider_job_id


def test_status_polls_until_the_job_succeeds(fresh_db_url: str, support: Engine, server: OpenAIServer) -> None:
    started = memora(fresh_db_url, server, "finetune", "start", "-d", "support", "-s", "v1", "-m", "gpt-4o-mini",
                     "--suffix", "support", "--no-validation")  # fmt: skip
    (job,) = jobs(support)

    waited = memora(fresh_db_url, server, "finetune", "status", "--wait", "--interval", "0.05", "--json")
    polls = len(server.requests_to(f"/v1/fine_tuning/jobs/{job.provider_job_id}"))
    listed = memora(fresh_db_url, None, "finetune", "list", COLUMNS="200")
    again = memora(fresh_db_url, server, "finetune", "status", job.provider_job_id, "--json")

    assert started.returncode == 0, started.stderr
    assert f"started {job.provider_job_id}" in started.stdout
    assert len(server.fine_tuning.files) == 1  # --no-validation
    assert waited.returncode == 0, waited.stderr
    (shown,) = json.loads(waited.stdout)
    (stored,) = jobs(support)
    content = next(iter(server.fine_tuning.files.values())).content
    assert stored.status == shown["status"] == "succeeded"
    assert stored.fine_tuned_model == shown["fine_tuned_model"] == f"ft:gpt-4o-mini:support:{job.provider_job_id}"
    assert stored.trained_tokens == trained_tokens(content, 1) > 0
    assert stored.error is None
    assert stored.updated_at > stored.created_at
    assert polls == 3  # validating_files -> queued -> running -> succeeded
    assert listed.returncode == 0, listed.stderr
    assert f"ft:gpt-4o-mini:support:{job.provider_job_id}" in listed.stdout
    assert "support" in listed.stdout
    assert "v1" in listed.stdout
    assert json.loads(again.stdout)[0]["status"] == "succeeded"
    assert len(server.requests_to(f"/v1/fine_tuning/jobs/{job.provider_job_id}")) == polls  # finished: not asked


def test_a_failed_job_is_recorded_with_its_error(fresh_db_url: str, support: Engine, server: OpenAIServer) -> None:
    server.fine_tuning.fail_next_job("The training loss diverged.")
    memora(fresh_db_url, server, "finetune", "start", "-d", "support", "-s", "v1", "-m", "gpt-4o-mini")

    waited = memora(fresh_db_url, server, "finetune", "status", "--wait", "--interval", "0.05", "--json")

    assert waited.returncode == 1
    (job,) = jobs(support)
    assert job.status == "failed"
    assert job.error == "job_failed: The training loss diverged."
    assert job.fine_tuned_model is None


def test_a_rejected_upload_leaves_nothing(fresh_db_url: str, support: Engine, server: OpenAIServer) -> None:
    server.fail_next(1, 400, path="/v1/files")

    result = memora(fresh_db_url, server, "finetune", "start", "-d", "support", "-s", "v1", "-m", "gpt-4o-mini")

    assert result.returncode == 1
    upload = f"upload of support-v1-train-openai-chat.jsonl at {server.base_url}"
    assert f"error: {upload}: HTTP 400: injected failure 400" in result.stderr
    assert "Traceback" not in result.stderr
    assert jobs(support) == []
    assert server.fine_tuning.files == {}
    assert server.requests_to("/v1/fine_tuning/jobs") == []


def test_a_failed_creation_is_not_retried_and_deletes_the_files(
    fresh_db_url: str, support: Engine, server: OpenAIServer
) -> None:
    server.fail_next(1, 500, path="/v1/fine_tuning/jobs")

    result = memora(fresh_db_url, server, "finetune", "start", "-d", "support", "-s", "v1", "-m", "gpt-4o-mini")

    assert result.returncode == 1
    assert f"error: job creation at {server.base_url}: HTTP 500" in result.stderr
    assert len(server.requests_to("/v1/fine_tuning/jobs")) == 1  # a retry might start a second job
    assert len(server.requests_to("/v1/files")) == 2
    assert server.fine_tuning.files == {}  # both uploads deleted again
    assert server.fine_tuning.jobs == {}
    assert jobs(support) == []


def test_a_rate_limited_creation_is_retried(fresh_db_url: str, support: Engine, server: OpenAIServer) -> None:
    server.fail_next(1, 429, headers={"Retry-After": "0"}, path="/v1/fine_tuning/jobs")

    result = memora(fresh_db_url, server, "finetune", "start", "-d", "support", "-s", "v1", "-m", "gpt-4o-mini")

    assert result.returncode == 0, result.stderr
    assert len(server.requests_to("/v1/fine_tuning/jobs")) == 2
    assert len(server.fine_tuning.jobs) == 1
    assert [job.provider_job_id for job in jobs(support)] == list(server.fine_tuning.jobs)


def test_the_services_own_refusal_is_reported(fresh_db_url: str, support: Engine, server: OpenAIServer) -> None:
    add_examples(support, "small", [chat(i, "train") for i in range(3)])
    snapshot(support, "small", "v1")

    result = memora(fresh_db_url, server, "finetune", "start", "-d", "small", "-s", "v1", "-m", "gpt-4o-mini")

    assert result.returncode == 1
    assert "HTTP 400: Training file has 3 example(s), but must have at least 10 examples" in result.stderr
    assert jobs(support) == []
    assert server.fine_tuning.files == {}


def test_refusals_exit_2_before_any_request(fresh_db_url: str, support: Engine, server: OpenAIServer) -> None:
    add_examples(support, "pairs", [{"format": "pairs", "split": "train", "input": {"anchor": "a", "positive": "b"}}])
    snapshot(support, "pairs", "v1")
    add_examples(support, "held-out", [chat(1, "test")])
    snapshot(support, "held-out", "v1")
    add_examples(support, "unanswerable", [{
        "format": "qa", "split": "train", "input": {"question": "Who?", "context": "Nobody knows."},
        "output": {"answers": {"text": [], "answer_start": []}, "is_impossible": True}}])  # fmt: skip
    snapshot(support, "unanswerable", "v1")
    start = ("finetune", "start", "-m", "gpt-4o-mini", "-s")
    cases = {
        ("-d", "nope", "-s", "v1"): "no dataset named 'nope'",
        ("-d", "support", "-s", "v9"): "dataset 'support' has no snapshot named 'v9'",
        ("-d", "pairs", "-s", "v1"): "snapshot 'v1' of dataset 'pairs' cannot be fine-tuned on: openai-chat takes "
        "chat, completion, classification, qa examples; this export has 1 pairs",
        ("-d", "held-out", "-s", "v1"): "snapshot 'v1' of dataset 'held-out' has no train examples to fine-tune on\n",
        ("-d", "unanswerable", "-s", "v1"): "has no train examples to fine-tune on (1 qa examples without an answer",
    }

    results = {args: memora(fresh_db_url, server, *start[:-1], *args) for args in cases}
    no_key = memora(fresh_db_url, None, *start, "v1", "-d", "support", MEMORA_OPENAI_BASE_URL=server.base_url)
    unknown_job = memora(fresh_db_url, server, "finetune", "status", "ftjob-404")

    for args, message in cases.items():
        assert results[args].returncode == 2, args
        assert message in results[args].stderr, results[args].stderr
    assert no_key.returncode == 2
    assert "fine-tuning needs an API key" in no_key.stderr
    assert unknown_job.returncode == 2
    assert "no fine-tuning job 'ftjob-404'" in unknown_job.stderr
    assert server.requests == []
    assert jobs(support) == []


def test_a_job_that_cannot_be_recorded_is_cancelled(support: Engine, server: OpenAIServer, tmp_path: Path) -> None:
    # The service will call its job ftjob-3 (after file-1 and file-2); a row for it exists already.
    with Session(support) as db, db.begin():
        db.add(FinetuneJob(dataset_name="x", snapshot_name="y", base_url=server.base_url, model="m",
                           training_file_id="f", provider_job_id="ftjob-3", status="succeeded"))  # fmt: skip
    settings = Settings(openai_api_key=KEY, openai_max_retries=0)  # type: ignore[arg-type]

    service = finetune_client.Service(settings, server.base_url)
    with Session(support, expire_on_commit=False) as db, pytest.raises(Exception, match="uq_finetune_job"):
        finetune.start(db, settings, service, tmp_path, dataset_name="support", snapshot_name="v1", model="gpt-4o-mini")

    assert server.fine_tuning.jobs["ftjob-3"]["status"] == "cancelled"
    assert [job.status for job in jobs(support)] == ["succeeded"]


def test_the_rest_view_reads_the_lineage(support: Engine, server: OpenAIServer, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from app.api.main import create_app
    from app.api.routes import finetune as routes

    settings = Settings(openai_api_key=KEY)  # type: ignore[arg-type]
    with Session(support, expire_on_commit=False) as db:
        service = finetune_client.Service(settings, server.base_url)
        job = finetune.start(db, settings, service, tmp_path, dataset_name="support", snapshot_name="v1",
                             model="gpt-4o-mini", suffix="s")  # fmt: skip
    app = create_app(settings, engine=support)
    if not any(getattr(route, "path", "") == "/v1/finetune/jobs" for route in app.routes):
        app.include_router(routes.router)

    with TestClient(app) as client:
        listed = client.get("/v1/finetune/jobs", params={"dataset": "support"})
        by_id = client.get(f"/v1/finetune/jobs/{job.id}")
        by_service_id = client.get(f"/v1/finetune/jobs/{job.provider_job_id}")
        missing = client.get("/v1/finetune/jobs/ftjob-404")
        other = client.get("/v1/finetune/jobs", params={"dataset": "other"})

    assert listed.status_code == 200
    assert [(j["dataset"], j["snapshot"], j["model"], j["status"]) for j in listed.json()] == [
        ("support", "v1", "gpt-4o-mini", "validating_files")
    ]
    assert by_id.json() == by_service_id.json() == listed.json()[0]
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert other.json() == []


@pytest.mark.parametrize("ref", ["²", "٣", "12³"])
def test_a_job_ref_of_digits_that_int_does_not_read_is_a_404(api: Any, ref: str) -> None:
    """Found by the OpenAPI fuzzer: str.isdigit() is true for superscripts, which int() refuses (a 500)."""
    response = api.get(f"/v1/finetune/jobs/{ref}")

    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
