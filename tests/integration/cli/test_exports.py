"""`memora export` as a user runs it: a file with a progress bar, standard output, errors, no partial files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
from psycopg.types.json import Jsonb

from tests.schema import q

CHATS = [
    {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}
    for i in range(5)
]


def memora(url: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "app", "--database-url", url, *args]
    return subprocess.run(command, capture_output=True, timeout=300, cwd=cwd)


def dataset(url: str, name: str = "talk") -> None:
    with psycopg.connect(url) as conn:
        dataset_id = conn.execute(
            q("INSERT INTO memora.dataset (name, task) VALUES (%s, 'chat') RETURNING id"), [name]
        ).fetchone()
        assert dataset_id is not None
        for record in CHATS:
            conn.execute(
                q("INSERT INTO memora.example (dataset_id, format, input) VALUES (%s, 'chat', %s)"),
                [dataset_id[0], Jsonb(record)],
            )


def test_export_writes_the_file(fresh_db_url: str, tmp_path: Path) -> None:
    dataset(fresh_db_url)
    target = tmp_path / "out" / "train.jsonl"
    target.parent.mkdir()

    result = memora(fresh_db_url, "export", "talk", "--format", "openai-chat", "-o", str(target))

    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in target.read_text().splitlines()] == CHATS
    stderr = result.stderr.decode()
    assert "openai-chat examples" in stderr  # the progress bar
    assert f"exported 5 examples of talk to {target}" in stderr
    assert [p.name for p in target.parent.iterdir()] == ["train.jsonl"]  # the partial file was renamed


def test_export_to_standard_output_and_to_the_default_name(fresh_db_url: str, tmp_path: Path) -> None:
    dataset(fresh_db_url)

    piped = memora(fresh_db_url, "export", "talk", "--format", "jsonl", "-o", "-")
    named = memora(fresh_db_url, "export", "talk", "--format", "parquet", cwd=tmp_path)

    assert piped.returncode == 0, piped.stderr
    assert [json.loads(line) for line in piped.stdout.decode().splitlines()] == CHATS
    assert named.returncode == 0, named.stderr
    table = pq.read_table(io.BytesIO((tmp_path / "talk-parquet.parquet").read_bytes()))
    assert [json.loads(m) for m in table.column("messages").to_pylist()] == [c["messages"] for c in CHATS]


def test_errors_are_one_line_and_leave_no_file(fresh_db_url: str, tmp_path: Path) -> None:
    dataset(fresh_db_url)

    missing = memora(fresh_db_url, "export", "nope", "--format", "jsonl", cwd=tmp_path)
    refused = memora(fresh_db_url, "export", "talk", "--format", "csv", cwd=tmp_path)
    bad = memora(fresh_db_url, "export", "talk", "--format", "yaml", cwd=tmp_path)

    assert (missing.returncode, missing.stderr.decode().strip()) == (1, "error: no dataset named 'nope'")
    assert refused.returncode == 1
    assert refused.stderr.decode().strip() == (
        "error: format: csv takes classification examples; this export has 5 chat"
    )
    assert bad.returncode == 1
    assert "unknown format 'yaml'" in bad.stderr.decode()
    assert list(tmp_path.iterdir()) == []
