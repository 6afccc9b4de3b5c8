"""Documents per second of 1, 2, 4 and 8 `memora worker` processes on one queue, when the embedding provider is the
bottleneck: each call to it takes a fixed time, as a remote API's round trip does.

The provider is the loopback OpenAI-compatible server of the tests (tests/openai_server.py) with a fixed latency per
call; the collection uses provider openai pointed at it. The documents are the first --documents distinct texts of
NFCorpus (../shared/data/nfcorpus), or generated ones when it is absent. A run: a new collection, K workers started
(separate processes, as K hosts would run them) and waiting on LISTEN, then every document inserted in one
statement; the time is from the first claim (the lease it set, on the database's clock) to the poll that finds
every document ready. Each round runs every K once, in an order rotated per round, so that other load on the
machine falls on all of them; the figures are the medians over rounds, with the provider's calls and inputs per run
(every text asked for once: no input is sent twice when no worker dies). Each run ends with the checks of the tests
(tests/integration/ingest/processes.py): every document ready, each chunk once, with the provider's vector.

Why these defaults: the provider must be the bottleneck at 8 workers too. With 2 documents a claim (one call of ~2
texts) and 0.5 s a call, a worker waits 0.25 s per document on the provider, and 8 workers can do at most
8 x 2 / 0.5 = 32 documents/s: well below what the machine does when the provider answers at once. Every round also
measures that ceiling: the most workers, no latency (--no-ceiling skips it). With the suggested 0.2 s a call and 4
documents a claim, 8 workers would ask for 160 documents/s, beyond a 2-core machine's ceiling: its CPU would be the
bottleneck, not the provider.

    .venv/bin/python benchmarks/worker_scaling.py [--workers 1 2 4 8] [--rounds 5] [--documents 400]
        [--latency 0.5] [--batch-size 2] [--no-ceiling] [--json benchmarks/results/worker_scaling.json]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from common import (
    REPO_ROOT,
    code_version,
    console,
    machine,
    print_facts,
    print_table,
    progress,
    scratch_database,
    write_json,
)
from load import NFCORPUS

from app.config import Settings
from app.db.query import in_schema
from tests.integration.ingest.processes import (
    SCHEMA,
    assert_complete_without_duplicates,
    assert_vectors_are_the_providers,
    execute,
    insert_documents,
    listening_workers,
    wait_for,
    worker_process,
)
from tests.openai_server import OpenAIServer, embedding_inputs

EMBEDDINGS = "/v1/embeddings"
MODEL, DIMENSIONS = "text-embedding-3-small", 64
POLL_SECONDS = 0.025


def load_documents(count: int) -> tuple[list[tuple[str, str, str]], str]:
    """COUNT documents as (external_id, title, content), and where they came from."""
    corpus = NFCORPUS / "corpus.jsonl"
    if corpus.is_file():
        documents: dict[str, tuple[str, str, str]] = {}
        with corpus.open() as lines:
            for line in lines:
                row = json.loads(line)
                documents.setdefault(row["text"], (row["_id"], row["title"], row["text"]))  # two ids, one text
                if len(documents) == count:
                    break
        return list(documents.values()), str(corpus)
    words = ["queue", "lease", "worker", "claim", "chunk", "vector", "embedding", "provider", "latency", "host"]
    generated = [
        (f"gen-{i}", "", " ".join(f"{words[(i * 7 + j) % len(words)]}-{i}-{j}" for j in range(150)))
        for i in range(count)
    ]
    return generated, "generated (150 words each)"


def run(url: str, server: OpenAIServer, documents: list[tuple[str, str, str]], workers: int, env: dict[str, str],
        name: str, bar: Any) -> dict[str, Any]:  # fmt: skip
    """One measurement: WORKERS processes ingest DOCUMENTS into a new collection NAME; the figures of the run."""
    execute(url,
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions) "
            "VALUES (%s, 'openai', %s, %s)", (name, MODEL, DIMENSIONS))  # fmt: skip
    processes = [worker_process(url, OPENAI_ORG_ID=f"worker-{i}", **env) for i in range(workers)]
    try:
        wait_for(lambda: listening_workers(url) == workers, timeout=300)
        seen = len(server.requests_to(EMBEDDINGS))
        task = bar.add_task(f"{workers} worker(s): documents ready", total=len(documents))
        insert_documents(url, documents, name)
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                ready, failed, at = conn.execute(in_schema(
                    "SELECT count(*) FILTER (WHERE d.status = 'ready'), count(*) FILTER (WHERE d.status = 'failed'), "
                    "clock_timestamp() FROM memora.document d JOIN memora.collection c ON c.id = d.collection_id "
                    "WHERE c.name = %s", SCHEMA), (name,)).fetchone()  # fmt: skip
                bar.update(task, completed=ready)
                if failed:
                    raise SystemExit(f"{failed} documents failed: see the workers' logs")
                if ready == len(documents):
                    break
                time.sleep(POLL_SECONDS)
        bar.remove_task(task)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=120) for process in processes]
    if any(process.returncode for process in processes):
        raise SystemExit(f"a worker failed: {outputs}")
    first_claim, chunks, distinct_chunks = execute(url,
        "SELECT min(d.available_at) - make_interval(secs => %s), "
        "(SELECT count(*) FROM memora.chunk k WHERE k.collection_id = c.id), "
        "(SELECT count(DISTINCT k.content_hash) FROM memora.chunk k WHERE k.collection_id = c.id) "
        "FROM memora.document d JOIN memora.collection c ON c.id = d.collection_id WHERE c.name = %s GROUP BY c.id",
        (int(env["MEMORA_WORKER_LEASE_SECONDS"]), name))[0]  # fmt: skip
    seconds = (at - first_claim).total_seconds()
    calls = server.requests_to(EMBEDDINGS)[seen:]
    inputs = Counter(text for call in calls for text in embedding_inputs(call))
    # The collection is the database's only one: every document ready, each chunk once, with the provider's vector.
    assert_complete_without_duplicates(url, len(documents))
    assert_vectors_are_the_providers(url)
    execute(url, "DELETE FROM memora.collection WHERE name = %s", (name,))  # the next run starts from equal tables
    return {
        "workers": workers, "seconds": round(seconds, 3), "documents_per_second": round(len(documents) / seconds, 2),
        "documents_per_worker": sorted(int(re.findall(r"processed (\d+)", out)[0]) for out, _ in outputs),
        "provider_calls": len(calls), "calls_per_worker": sorted(Counter(c.headers["openai-organization"]
                                                                        for c in calls).values()),
        "inputs": sum(inputs.values()), "distinct_inputs": len(inputs),
        "repeated_inputs": sum(inputs.values()) - len(inputs), "chunks": chunks, "distinct_chunks": distinct_chunks,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8], help="worker counts K")
    parser.add_argument("--rounds", type=int, default=5, help="runs of every K")
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds every embedding call takes")
    parser.add_argument("--batch-size", type=int, default=2, help="documents a worker claims at once")
    parser.add_argument("--embed-batch-size", type=int, default=64, help="texts per embedding call")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the run without latency of every round")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks/results/worker_scaling.json")
    args = parser.parse_args()

    documents, source = load_documents(args.documents)
    parameters = {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "source": source,
                  "model": MODEL, "dimensions": DIMENSIONS, "chunking": "the collection default"}  # fmt: skip
    facts, code = machine(), code_version()
    # Each round: every K with the latency, in an order rotated per round; then the most workers without it, what
    # the machine itself can do (when that is near the figure with the latency, the provider was not the bottleneck).
    plan = [(k, args.latency) for k in args.workers] + ([] if args.no_ceiling else [(max(args.workers), 0.0)])
    rounds: list[list[dict[str, Any]]] = []
    with scratch_database("worker_scaling") as scratch, OpenAIServer() as server, progress() as bar:
        env = {"MEMORA_OPENAI_BASE_URL": server.base_url, "MEMORA_OPENAI_API_KEY": "sk-bench",
               "MEMORA_WORKER_BATCH_SIZE": str(args.batch_size), "MEMORA_EMBED_BATCH_SIZE": str(args.embed_batch_size),
               "MEMORA_WORKER_LEASE_SECONDS": str(Settings.model_fields["worker_lease_seconds"].default)}  # fmt: skip
        print_facts("worker scaling", {**parameters, **facts, **code, "server": scratch.server})
        runs = bar.add_task("runs", total=args.rounds * len(plan))
        for number in range(args.rounds):
            turn = number % len(args.workers)
            figures = []
            for workers, latency in plan[turn : len(args.workers)] + plan[:turn] + plan[len(args.workers) :]:
                server.latency = latency
                figure = run(scratch.url, server, documents, workers, env, f"scaling_{number}_{len(figures)}", bar)
                figures.append({"latency": latency, **figure})
                bar.advance(runs)
                console.print(f"round {number + 1}: {workers} worker(s), {latency * 1000:.0f} ms per call: "
                              f"{figure['documents_per_second']} docs/s")  # fmt: skip
            rounds.append(sorted(figures, key=lambda f: (-f["latency"], f["workers"])))
        server_kind = scratch.server

    def median(workers: int, latency: float, key: str) -> float:
        return statistics.median(f[key] for f in runs_of(workers, latency))

    def runs_of(workers: int, latency: float) -> list[dict[str, Any]]:
        return [f for figures in rounds for f in figures if (f["workers"], f["latency"]) == (workers, latency)]

    base = median(args.workers[0], args.latency, "documents_per_second")
    summary = [
        {"workers": k, "latency": latency,
         "median_documents_per_second": round(median(k, latency, "documents_per_second"), 2),
         "ratio_to_first": round(median(k, latency, "documents_per_second") / base, 2) if latency else None,
         "provider_calls": median(k, latency, "provider_calls"), "inputs": median(k, latency, "inputs"),
         "repeated_inputs": max(f["repeated_inputs"] for f in runs_of(k, latency))}
        for k, latency in plan
    ]  # fmt: skip
    print_table(
        f"{len(documents)} documents, {args.batch_size} per claim; medians of {args.rounds} rounds",
        ["workers", "ms per call", "docs/s", f"x K={args.workers[0]}", "provider calls", "inputs", "repeated inputs"],
        [[row["workers"], row["latency"] * 1000, *list(row.values())[2:]] for row in summary],
    )
    write_json(args.json, {"benchmark": "worker_scaling", "parameters": parameters, "summary": summary,
                           "rounds": rounds, "server": server_kind, "machine": facts, "code": code})  # fmt: skip


if __name__ == "__main__":
    main()
