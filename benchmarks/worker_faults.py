"""How long the batch of a worker killed mid-batch (`kill -9`) waits before another worker takes it over, with the
default lease (MEMORA_WORKER_LEASE_SECONDS, 30 s, renewed every 10 s) or --lease.

Each round: a victim `memora worker` claims a batch and hangs in its embedding call (the loopback OpenAI-compatible
server of the tests holds the call); a rescuer `memora worker` starts and waits; the victim is killed, ROUND/ROUNDS
of a renewal interval after its call began (or as soon as the rescuer listens), so the kills land across the
renewal cycle. The figures: the time from the kill to the rescuer's claim of the batch (read from the lease the
claim set, on the database's clock), to its first embedding call for it, and to the batch being ready. At the end
every document must be ready, each chunk once (the same check as the fault tests).

    .venv/bin/python benchmarks/worker_faults.py [--rounds 3] [--documents 8] [--lease SECONDS]
        [--json benchmarks/results/worker_faults.json]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from common import REPO_ROOT, code_version, console, machine, print_facts, print_table, scratch_database, write_json

from app.config import Settings
from app.db.query import in_schema
from tests.openai_server import OpenAIServer

EMBEDDINGS = "/v1/embeddings"
TEXT = "\n\n".join(f"Section {i}: the worker embeds this paragraph about subject {i}." for i in range(6))


def sql(url: str, schema: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(in_schema(statement, schema), params)
        return cursor.fetchall() if cursor.description else []


def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def worker(url: str, env: dict[str, str]) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")} | env
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--database-url", url, "worker"],
        env=environment,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--documents", type=int, default=8, help="documents per round (one batch)")
    parser.add_argument("--lease", type=int, default=None, help="MEMORA_WORKER_LEASE_SECONDS (default: the setting's)")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks/results/worker_faults.json")
    args = parser.parse_args()
    lease = args.lease or Settings.model_fields["worker_lease_seconds"].default
    renewal = lease / 3

    rounds: list[dict[str, Any]] = []
    with scratch_database("worker_faults") as scratch, OpenAIServer() as server:
        url, schema = scratch.url, scratch.settings.db_schema
        sql(url, schema,
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions, chunking) "
            "VALUES ('docs', 'openai', 'text-embedding-3-small', 64, %s)",
            ('{"strategy": "recursive", "size": 16, "overlap": 0}',))  # fmt: skip
        env = {
            "MEMORA_DB_SCHEMA": schema, "MEMORA_OPENAI_BASE_URL": server.base_url, "MEMORA_OPENAI_API_KEY": "sk-bench",
            "MEMORA_WORKER_LEASE_SECONDS": str(lease), "MEMORA_WORKER_BATCH_SIZE": str(args.documents),
        }  # fmt: skip
        for number in range(args.rounds):
            server.delay_next(1, 3600, path=EMBEDDINGS)  # the victim's call hangs until it is killed
            victim = worker(url, env)
            until(lambda: sql(url, schema, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                              "'memora-worker-listen' AND datname = current_database()")[0][0] == 1, 60,
                  "the victim to listen")  # fmt: skip
            sql(url, schema,  # one transaction, so that the victim claims them as one batch
                "INSERT INTO memora.document (collection_id, external_id, content) "
                "SELECT c.id, 'round-' || %s || '-' || i, 'Round ' || %s || ', document ' || i || E'.\\n\\n' || %s "
                "FROM memora.collection c, generate_series(1, %s) i WHERE c.name = 'docs'",
                (number, number, TEXT, args.documents))  # fmt: skip
            seen = len(server.requests_to(EMBEDDINGS))
            until(lambda seen=seen: len(server.requests_to(EMBEDDINGS)) > seen, 60, "the victim's embedding call")
            call_began = server.requests_to(EMBEDDINGS)[seen].received_at
            rescuer = worker(url, env)
            until(lambda: sql(url, schema, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                              "'memora-worker-listen' AND datname = current_database()")[0][0] == 2, 60,
                  "the rescuer to listen")  # fmt: skip
            offset = renewal * number / max(args.rounds, 1)
            time.sleep(max(0.0, call_began + offset - time.monotonic()))
            seen = len(server.requests_to(EMBEDDINGS))
            killed_at = time.monotonic()
            victim.send_signal(signal.SIGKILL)
            killed_at_db = sql(url, schema, "SELECT clock_timestamp()")[0][0]
            victim.communicate(timeout=30)
            until(lambda seen=seen: len(server.requests_to(EMBEDDINGS)) > seen, lease * 3, "the takeover")
            first_call = server.requests_to(EMBEDDINGS)[seen].received_at - killed_at
            # The claim set available_at to now() + lease (the next renewal is a third of a lease away).
            taken_over = sql(url, schema,
                             "SELECT extract(epoch FROM min(available_at) - make_interval(secs => %s) - %s) "
                             "FROM memora.document WHERE external_id LIKE %s",
                             (lease, killed_at_db, f"round-{number}-%"))[0][0]  # fmt: skip
            taken_over = float(taken_over)
            until(lambda number=number: sql(url, schema, "SELECT count(*) FROM memora.document WHERE status <> "
                                            "'ready' AND external_id LIKE %s", (f"round-{number}-%",))[0][0] == 0,
                  lease * 3, "the batch to be ready")  # fmt: skip
            ready = time.monotonic() - killed_at
            rescuer.send_signal(signal.SIGTERM)
            _, stderr = rescuer.communicate(timeout=60)
            rounds.append({
                "kill_after_call_began_s": round(killed_at - call_began, 2), "kill_to_claim_s": round(taken_over, 2),
                "kill_to_first_call_s": round(first_call, 2), "kill_to_ready_s": round(ready, 2),
                "takeover_logged": stderr.count("took document"),
            })  # fmt: skip
            console.print(f"round {number + 1}: taken over {taken_over:.1f} s after the kill, ready at {ready:.1f} s")
        duplicates = sql(url, schema,
                         "SELECT count(*) FROM (SELECT document_id, ordinal FROM memora.chunk "
                         "GROUP BY document_id, ordinal HAVING count(*) > 1) d")[0][0]  # fmt: skip
        not_ready = sql(url, schema, "SELECT count(*) FROM memora.document WHERE status <> 'ready'")[0][0]
        server_kind = scratch.server

    takeovers = [r["kill_to_claim_s"] for r in rounds]
    summary = {
        "lease_seconds": lease, "renewal_every_s": round(renewal, 2), "rounds": len(rounds),
        "kill_to_claim_s": {"min": min(takeovers), "median": statistics.median(takeovers), "max": max(takeovers)},
        "documents_not_ready": not_ready, "duplicated_chunks": duplicates,
    }  # fmt: skip
    print_facts("worker faults", {**summary, "server": server_kind})
    print_table("rounds", list(rounds[0]), [list(r.values()) for r in rounds])
    write_json(args.json, {"summary": summary, "rounds": rounds, "server": server_kind, "machine": machine(),
                           "code": code_version()})  # fmt: skip


if __name__ == "__main__":
    main()
