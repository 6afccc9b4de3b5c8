"""Export speed: N chat examples to openai-chat JSONL through `memora export`'s code path, against other ways.

Each variant runs in a process of its own, so its peak RSS is its own; the parent samples the child's VmRSS and
the size of the file it writes four times a second, which shows whether memory stays flat while the file grows.
Variants:
  memora          app.cli.exports.run_export, what `memora export DATASET --format openai-chat` runs:
                  one COPY in which PostgreSQL writes each chat line
  python-lines    the same COPY with rows as JSON, each line made by Python (exports/lines.chat_line)
  cursor-lines    the lines made by PostgreSQL, fetched through a server-side cursor 2,000 at a time
  orm-fetchall    the naive way: SQLAlchemy ORM .all(), then json.dumps per example (first --baseline-rows only)

    .venv/bin/python benchmarks/export.py [--rows 1000000] [--baseline-rows 200000] [--json PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from common import code_version, console, machine, print_facts, print_table, progress, scratch_database, server_facts
from common import write_json as write_results

from app.config import Settings

DATASET = "bench"
FILL_BATCH = 100_000
VARIANTS = ("memora", "python-lines", "cursor-lines", "orm-fetchall")

_FILL = """
INSERT INTO memora.example (dataset_id, seq, format, split, input, content_hash, text_hash)
SELECT %(dataset)s, i, 'chat',
       CASE i %% 10 WHEN 8 THEN 'validation' WHEN 9 THEN 'test' ELSE 'train' END,
       jsonb_build_object('messages', jsonb_build_array(
           jsonb_build_object('role', 'system', 'content',
                              'You are the support assistant of an online shop. Answer briefly and politely.'),
           jsonb_build_object('role', 'user', 'content',
                              'Order ' || i || ': how do I return a pair of shoes that do not fit, and who pays?'),
           jsonb_build_object('role', 'assistant', 'content',
                              'For order ' || i || ', open "My orders", choose "Return" and print the label. '
                              || 'Returns within 30 days are free; the refund arrives in 3-5 days.'))),
       sha256(int8send(i)), sha256(int8send(-i - 1))
FROM generate_series(%(low)s::bigint, %(high)s::bigint - 1) AS i
"""


def fill(url: str, rows: int) -> float:
    """A chat dataset of ROWS examples, written in bulk (seq, split and hashes given, so no per-row trigger work)."""
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        dataset_id = conn.execute(
            "INSERT INTO memora.dataset (name, task, next_seq) VALUES (%s, 'chat', %s) RETURNING id", [DATASET, rows]
        ).fetchone()[0]  # type: ignore[index]
        with progress() as bar:
            task = bar.add_task("examples", total=rows)
            for low in range(0, rows, FILL_BATCH):
                high = min(rows, low + FILL_BATCH)
                conn.execute(_FILL, {"dataset": dataset_id, "low": low, "high": high})
                bar.advance(task, high - low)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE memora.example")
    return time.perf_counter() - started


# -- the variants, each run in a child process ----------------------------------------------------------------


def child(variant: str, url: str, output: Path, limit: int) -> dict[str, Any]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from app.cli.exports import run_export
    from app.db.engine import make_engine
    from app.db.models import Dataset, Example
    from app.training.exports import lines, repository
    from app.training.exports import service as export
    from app.training.exports.schemas import Options

    settings = Settings(database_url=url)
    engine = make_engine(settings, "cli")
    with engine.connect() as conn:  # connect and warm up before the clock starts
        conn.exec_driver_sql("SELECT 1")
    rss_before = _rss_kib()
    started = time.perf_counter()
    if variant == "memora":
        job, _ = run_export(settings, engine, DATASET, Options("openai-chat"), str(output))
        examples = job.total
    elif variant == "python-lines":
        with engine.connect() as conn, Session(bind=conn) as db, output.open("wb") as file:
            job = export.prepare(db, DATASET, Options("openai-chat"))
            repository.unbounded(db)
            for data in repository.copy(db, job.source, repository.ROW_JSON):  # every row as JSON, for Python
                file.write(lines.chat_line(json.loads(bytes(data[1:]))).encode() + b"\n")
            examples = job.total
    elif variant == "cursor-lines":
        with engine.connect() as conn, Session(bind=conn) as db, output.open("wb") as file:
            job = export.prepare(db, DATASET, Options("openai-chat"))
            query, params = job.source.statement(f"SELECT {repository.CHAT_LINE}")
            driver = db.connection().connection.driver_connection
            examples = 0
            with driver.cursor(name="bench") as cursor:  # type: ignore[union-attr]
                cursor.execute(query.sql(db), params)
                while rows := cursor.fetchmany(2000):
                    file.write(("\n".join(row[0] for row in rows) + "\n").encode())
                    examples += len(rows)
    else:
        with Session(engine) as db, output.open("w") as text_file:
            dataset = db.scalars(select(Dataset).where(Dataset.name == DATASET)).one()
            query = select(Example).where(Example.dataset_id == dataset.id, Example.deleted_at.is_(None))
            found = db.scalars(query.order_by(Example.seq).limit(limit)).all()
            for example in found:
                text_file.write(json.dumps({"messages": example.input["messages"]}, ensure_ascii=False) + "\n")
            examples = len(found)
    seconds = time.perf_counter() - started
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec, so a child would report its parent's peak.
    peak = _status_kib("VmHWM")
    return {"seconds": seconds, "examples": examples, "rss_before_kib": rss_before, "peak_rss_kib": peak}


def _rss_kib(pid: int | str = "self") -> int:
    return _status_kib("VmRSS", pid)


def _status_kib(key: str, pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(variant: str, url: str, output: Path, limit: int) -> dict[str, Any]:
    """Run VARIANT in a child process, sampling its RSS and the size of its file."""
    command = [sys.executable, __file__, "--child", variant, "--url", url, "--output", str(output),
               "--baseline-rows", str(limit)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    samples: list[tuple[float, int, int]] = []
    started = time.perf_counter()
    partial = output.with_name(f".{output.name}.partial")  # where `memora export` writes until it is complete
    while process.poll() is None:
        size = max((p.stat().st_size for p in (output, partial) if p.exists()), default=0)
        samples.append((round(time.perf_counter() - started, 2), size, _rss_kib(process.pid)))
        time.sleep(0.25)
    stdout, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"variant {variant} failed with exit code {process.returncode}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    size = output.stat().st_size
    digest = hashlib.sha256()
    with output.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    growing = [s for s in samples if 0 < s[1] < size and s[2] > 0]
    result |= {
        "variant": variant,
        "bytes": size,
        "sha256": digest.hexdigest(),
        "examples_per_second": result["examples"] / result["seconds"],
        "mib_per_second": size / result["seconds"] / 2**20,
        # RSS while the file grew: flat means constant memory.
        "rss_while_growing_kib": _spread([s[2] for s in growing]),
        "samples": samples[:: max(1, len(samples) // 40)],
    }
    output.unlink()
    return result


def _spread(values: list[int]) -> dict[str, int] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1], "samples": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=200_000, help="Examples the ORM baseline exports.")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, args.output, args.baseline_rows)))
        return

    facts: dict[str, Any] = {"machine": machine(), "code": code_version(), "rows": args.rows}
    with scratch_database("export") as scratch, tempfile.TemporaryDirectory(prefix="memora-export-") as tmp:
        facts["server"] = server_facts(scratch.url)
        facts["fill_seconds"] = round(fill(scratch.url, args.rows), 1)
        console.print(f"filled {args.rows:,} chat examples in {facts['fill_seconds']} s")
        results = []
        for variant in args.variants.split(","):
            console.print(f"exporting: {variant}")
            results.append(measure(variant, scratch.url, Path(tmp) / f"{variant}.jsonl", args.baseline_rows))
    by_name = {r["variant"]: r for r in results}
    if "memora" in by_name and "python-lines" in by_name:
        facts["memora_equals_python_lines"] = by_name["memora"]["sha256"] == by_name["python-lines"]["sha256"]
    if "memora" in by_name and "orm-fetchall" in by_name:
        facts["speedup_over_orm"] = round(
            by_name["memora"]["examples_per_second"] / by_name["orm-fetchall"]["examples_per_second"], 1
        )
    print_facts("export benchmark", {k: v for k, v in facts.items() if k not in ("machine", "server")})
    print_table(
        "openai-chat JSONL export",
        ["variant", "examples", "seconds", "examples/s", "MiB/s", "peak RSS MiB", "RSS growing MiB (min-max)"],
        [
            [
                r["variant"], r["examples"], r["seconds"], r["examples_per_second"], r["mib_per_second"],
                r["peak_rss_kib"] / 1024,
                "-" if not r["rss_while_growing_kib"] else
                f"{r['rss_while_growing_kib']['min'] / 1024:.0f}-{r['rss_while_growing_kib']['max'] / 1024:.0f}",
            ]
            for r in results
        ],
    )  # fmt: skip
    write_results(args.json, {**facts, "results": results})


if __name__ == "__main__":
    main()
