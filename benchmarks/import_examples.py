"""Import of chat examples from JSONL in skip mode: Memora's importer against a row-at-a-time ORM baseline.

The file: N chat conversations (a system prompt, a user question, an assistant answer), built from the SQuAD
questions and answers in ../shared/data/squad when that is there (synthetic sentences otherwise), each line made
unique with its number; every 50th line is broken on purpose (skip mode reports it). Both variants read the same
file, validate each record with app/training/formats/records.py and count its tokens; they differ in how rows reach
PostgreSQL:

- memora: app/training/imports/importer.Importer (COPY into a staging table, one INSERT ... SELECT per 5,000
  records that hashes in SQL, drops duplicates and assigns seq and split);
- orm: the same validated rows added as ORM objects, flushed every 1,000 (the seed's way of writing rows).

    .venv/bin/python benchmarks/import_examples.py [--rows 1000000] [--baseline-rows 50000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO_ROOT, code_version, console, machine, print_facts, print_table, scratch_database, write_json
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from sqlalchemy.orm import Session

from app.db.engine import make_engine
from app.db.models import Dataset, Example
from app.training.formats import records
from app.training.imports import readers
from app.training.imports.importer import Importer

SQUAD = REPO_ROOT.parent / "shared/data/squad/dev-v2.0.json"


def pairs() -> list[tuple[str, str]]:
    """(question, answer) pairs: SQuAD's answerable questions, or synthetic ones."""
    if SQUAD.exists():
        data = json.loads(SQUAD.read_text())["data"]
        found = [
            (qa["question"], qa["answers"][0]["text"])
            for article in data
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]
            if qa["answers"]
        ]
        if found:
            return found
    rng = random.Random(0)
    words = [
        "the",
        "a",
        "model",
        "data",
        "answer",
        "question",
        "paris",
        "france",
        "river",
        "city",
        "year",
        "people",
        "first",
        "large",
    ]
    return [(" ".join(rng.choices(words, k=10)) + "?", " ".join(rng.choices(words, k=6))) for _ in range(5000)]


def write_file(path: Path, rows: int) -> int:
    """Write ROWS lines of chat JSONL; returns the number of lines broken on purpose."""
    source = pairs()
    broken = 0
    with path.open("w") as out:
        for i in range(rows):
            if i % 50 == 49:
                out.write('{"messages": [{"role": "user", "content": "no answer"}]}\n')
                broken += 1
                continue
            question, answer = source[i % len(source)]
            record = {
                "messages": [
                    {"role": "system", "content": "Answer from the passage, briefly."},
                    {"role": "user", "content": f"{question} (#{i})"},
                    {"role": "assistant", "content": answer},
                ]
            }
            out.write(json.dumps(record) + "\n")
    return broken


def new_dataset(db: Session, name: str) -> Dataset:
    dataset = Dataset(name=name, task="chat")
    db.add(dataset)
    db.commit()
    return dataset


def run_memora(url: str, path: Path, rows: int) -> dict[str, Any]:
    engine = make_engine_for(url)
    columns = (TextColumn("memora"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Session(engine) as db, Progress(*columns, console=console) as bar:
        dataset = new_dataset(db, "memora")
        started = time.perf_counter()
        with db.begin(), bar.open(path, "rb") as stream:
            job = Importer(db, dataset, mode="skip")
            job.add(readers.read_jsonl(stream))
            report = job.finish()
        seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "stored": report.stored, "invalid": report.invalid, "examples_per_s": rows / seconds}


def run_orm(url: str, path: Path, rows: int) -> dict[str, Any]:
    engine = make_engine_for(url)
    stored = invalid = 0
    with Session(engine) as db:
        dataset = new_dataset(db, "orm")
        started = time.perf_counter()
        with path.open("rb") as stream:
            for number, line in enumerate(stream, start=1):
                if number > rows:
                    break
                parsed = records.parse_record(json.loads(line), None, line=number)
                if isinstance(parsed, list):
                    invalid += 1
                    continue
                db.add(Example(dataset_id=dataset.id, format=parsed.format, input=parsed.input,
                               token_count=parsed.token_count, metadata_=parsed.metadata))  # fmt: skip
                stored += 1
                if stored % 1000 == 0:
                    db.flush()
        db.commit()
        seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "stored": stored, "invalid": invalid, "examples_per_s": rows / seconds}


def make_engine_for(url: str) -> Any:
    from app.config import Settings

    return make_engine(Settings(database_url=url), "benchmark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="lines in the file (memora imports them all)")
    parser.add_argument("--baseline-rows", type=int, default=50_000, help="lines the ORM baseline imports")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    facts: dict[str, Any] = {"machine": machine(), "code": code_version(), "rows": args.rows}
    with tempfile.TemporaryDirectory(prefix="memora-import-") as tmp, scratch_database("import") as scratch:
        path = Path(tmp) / "chat.jsonl"
        with console.status(f"writing {args.rows:,} lines"):
            facts["broken_lines"] = write_file(path, args.rows)
        facts["file_mb"] = round(path.stat().st_size / 1e6, 1)
        facts["source"] = "SQuAD questions and answers" if SQUAD.exists() else "synthetic"
        facts["server"] = scratch.server
        print_facts("import of chat JSONL", {k: v for k, v in facts.items() if k not in ("machine", "code")})
        orm = run_orm(scratch.url, path, min(args.baseline_rows, args.rows))
        memora = run_memora(scratch.url, path, args.rows)
    facts["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results = {"memora": memora, "orm": orm, "ratio_memora_to_orm": memora["examples_per_s"] / orm["examples_per_s"]}
    print_table(
        "examples/s (skip mode, validation and token counts included)",
        ["variant", "rows", "seconds", "examples/s", "stored", "invalid"],
        [
            ["memora (COPY + INSERT ... SELECT)", args.rows, memora["seconds"], memora["examples_per_s"],
             memora["stored"], memora["invalid"]],
            ["orm (add + flush per 1,000)", min(args.baseline_rows, args.rows), orm["seconds"], orm["examples_per_s"],
             orm["stored"], orm["invalid"]],
        ],
    )  # fmt: skip
    console.print(f"memora / orm: {results['ratio_memora_to_orm']:.1f}x; goal: >= 20,000 examples/s")
    write_json(args.json, facts | {"results": results})


if __name__ == "__main__":
    main()
