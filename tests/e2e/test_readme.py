"""The training quick starts of the README and docs/training.md, command by command, as a new user runs them from
a fresh clone (the example files they import ship in docs/examples/)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands(first: str, page: str = "README.md") -> list[list[str]]:
    """The `memora` lines of PAGE's shell block that starts with FIRST, comments dropped."""
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", (ROOT / page).read_text(), flags=re.S)
    (block,) = [b for b in blocks if b.startswith(first)]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("memora ")]


def run_all(commands: list[list[str]], database_url: str, cwd: Path) -> list[str]:
    """Run each command in CWD (holding a copy of docs/examples) against DATABASE_URL; their stdout and stderr."""
    shutil.copytree(ROOT / "docs" / "examples", cwd / "docs" / "examples", dirs_exist_ok=True)
    env = {**os.environ, "MEMORA_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    outputs = []
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "app", *command[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, (command, result.stderr)
        outputs.append(result.stdout + result.stderr)
    return outputs


def test_the_training_quick_start_runs_as_written(fresh_db_url: str, tmp_path: Path) -> None:
    commands = readme_commands("memora dataset create")
    assert len(commands) == 6

    outputs = run_all(commands, fresh_db_url, tmp_path)

    imported, _, deduplicated, snapshot, _ = outputs[1:]
    assert re.search(r"stored\s+│\s+23", imported), imported
    assert re.search(r"duplicates\s+│\s+1", imported), imported
    assert "1 near clusters" in deduplicated, deduplicated
    assert "created snapshot v1 of support: 22 examples" in snapshot
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert train, "the train split of the example file is not empty"
    assert all(line["messages"][-1]["role"] == "assistant" for line in train)


def test_the_training_page_imports_its_example_csv(fresh_db_url: str, tmp_path: Path) -> None:
    commands = readme_commands("memora dataset create sms", "docs/training.md")

    created, imported, listed = run_all(commands, fresh_db_url, tmp_path)
    assert created.startswith("created sms (classification)")

    assert re.search(r"stored\s+│\s+20", imported), imported
    assert re.search(r"labels\s+│\s+ham 10, spam 10", imported), imported
    assert listed.startswith("sms\tclassification\t20 examples")


def test_the_ingest_line_of_the_quick_start_runs_as_written(fresh_db_url: str, tmp_path: Path) -> None:
    (line,) = [c for c in readme_commands("curl -s -X POST localhost:8000/v1/collections -H") if c[1] == "ingest"]
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    create = ["memora", "collection", "create", "handbook"]  # what the block's first curl does

    created, ingested = run_all([create, line], fresh_db_url, tmp_path)

    markdown = len(list((ROOT / "docs").rglob("*.md")))
    assert created.startswith("created handbook")
    assert f"{markdown} documents new or changed, 0 files skipped" in ingested
    assert f"ready: {markdown}, failed: 0" in ingested
