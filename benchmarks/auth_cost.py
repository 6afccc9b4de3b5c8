"""What API keys cost a search: hybrid search over REST with keys required (a read key) against the same server
open, in one run, the two taking turns query by query.

A scratch database (MEMORA_DATABASE_URL's server, else an embedded one) gets --documents of NFCorpus
(/work/shared/data/nfcorpus; tests/fixtures/beir when absent), one chunk each, its vector computed here by the local
model. Two `memora serve --no-worker` run on it, both on loopback: one with MEMORA_AUTH=required, called with a read
key (`Authorization: Bearer`), one with MEMORA_AUTH=off, called with none (MEMORA_AUTH is set on both, since `auto`
decides by the bind address). Every query goes to both, in a random order per query, one request at a time on one
keep-alive connection per server: hybrid search, k 10, the query embedded by the server. Queries are NFCorpus's, half
as keywords (2-4 words), half as questions of 10-20 words (benchmarks/load.py). Reports p50/p95/mean per side and
kind of query, the paired difference per query (keys - open) with a bootstrap interval of its median, and whether the
keyed server refused a request without a key (before enforcement lands, both sides do the same work).

    .venv/bin/python benchmarks/auth_cost.py                         # 2,000 documents, 600 queries
    .venv/bin/python benchmarks/auth_cost.py --documents 300 --queries 50 --json /tmp/auth_cost.json   # quick
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from common import (
    REPO_ROOT,
    ScratchDatabase,
    code_version,
    machine,
    memora_serve,
    print_facts,
    print_table,
    progress,
    scratch_database,
    server_facts,
    write_json,
)
from load import FIXTURES, NFCORPUS, make_queries, read_jsonl, store
from sqlalchemy.orm import Session

from app.auth import keys
from app.auth.principal import Role
from app.db.engine import make_engine

COLLECTION = "auth-cost"
SIDES = ("open", "keys")
# Both servers alike but for MEMORA_AUTH: no rate limit, no worker.
COMMON_ENV = {"MEMORA_RATE_LIMIT_PER_MINUTE": "0", "MEMORA_WORKER_IN_SERVE": "false"}


def make_keys(db: ScratchDatabase) -> str:
    """An admin key (a server that requires keys may refuse to start without one) and the read key the benchmark
    searches with; the read key's secret."""
    engine = make_engine(db.settings, "bench")
    try:
        with Session(engine) as session, session.begin():
            keys.create(session, db.settings, "bench-admin", Role.admin)
            return keys.create(session, db.settings, "bench-reader", Role.read).secret
    finally:
        engine.dispose()


def measure(
    clients: dict[str, httpx.Client], queries: list[str], k: int, seed: int, bar: Any
) -> dict[str, dict[str, list[float]]]:
    """Every query on both servers, in a random order per query: client-side ms and the server's took_ms."""
    path = f"/v1/collections/{COLLECTION}/search"
    for query in queries[:20]:  # warm-up: each server loads the model on its first query
        for side in SIDES:
            clients[side].post(path, json={"query": query, "k": k}).raise_for_status()
    rng = np.random.default_rng(seed)
    found: dict[str, dict[str, list[float]]] = {side: {"ms": [], "took_ms": []} for side in SIDES}
    task = bar.add_task("hybrid search, open and with a key, taking turns", total=len(queries))
    for query in queries:
        for index in rng.permutation(len(SIDES)):
            side = SIDES[index]
            start = time.perf_counter()
            response = clients[side].post(path, json={"query": query, "k": k})
            found[side]["ms"].append(1000 * (time.perf_counter() - start))
            response.raise_for_status()
            found[side]["took_ms"].append(response.json()["took_ms"])
        bar.advance(task)
    bar.remove_task(task)
    return found


def summarize(ms: list[float]) -> dict[str, float]:
    values = np.array(ms)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "mean_ms": float(values.mean()),
    }


def paired(open_ms: list[float], keys_ms: list[float], seed: int) -> dict[str, Any]:
    """The per-query difference keys - open: its median, a 95 % bootstrap interval of that median, and the share
    of queries where the keyed request was the slower."""
    diff = np.array(keys_ms) - np.array(open_ms)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(diff, size=(2000, len(diff))), axis=1)
    return {
        "median_diff_ms": float(np.median(diff)),
        "median_diff_ci95_ms": [float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))],
        "share_keys_slower": float(np.mean(diff > 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=2000, help="documents to store (default 2000)")
    parser.add_argument("--queries", type=int, default=600, help="queries, each sent to both servers (default 600)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--data", type=Path, default=NFCORPUS if NFCORPUS.exists() else FIXTURES)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "auth_cost.json")
    args = parser.parse_args()

    corpus = read_jsonl(args.data / "corpus.jsonl", args.documents)
    made = make_queries(corpus, read_jsonl(args.data / "queries.jsonl"), random.Random(args.seed))
    queries = [made[i % len(made)] for i in range(args.queries)]
    kinds = ["question" if query.endswith("?") else "keywords" for query in queries]
    facts: dict[str, Any] = {**machine(), **code_version()}

    with scratch_database("memora_auth_cost") as db:
        facts |= {**server_facts(db.url), "server": db.server}
        secret = make_keys(db)
        with (
            memora_serve(db.url, **COMMON_ENV, MEMORA_AUTH="off") as open_url,
            memora_serve(db.url, **COMMON_ENV, MEMORA_AUTH="required") as keyed_url,
            httpx.Client(base_url=open_url, timeout=60) as open_client,
            httpx.Client(base_url=keyed_url, timeout=60, headers={"Authorization": f"Bearer {secret}"}) as keyed,
            progress() as bar,
        ):
            store(open_url, COLLECTION, corpus, bar)
            probe = {"query": "vitamin d", "k": args.k}
            refused = httpx.post(f"{keyed_url}/v1/collections/{COLLECTION}/search", json=probe, timeout=60)
            facts["keys_enforced"] = refused.status_code == 401
            found = measure({"open": open_client, "keys": keyed}, queries, args.k, args.seed, bar)

    figures: dict[str, Any] = {}
    rows: list[list[Any]] = []
    for kind in ("all", "keywords", "question"):
        chosen = [i for i, each in enumerate(kinds) if kind in ("all", each)]
        if not chosen:
            continue
        entry: dict[str, Any] = {"queries": len(chosen)}
        for side in SIDES:
            entry[side] = summarize([found[side]["ms"][i] for i in chosen])
            entry[side]["server_took_p50_ms"] = float(np.percentile([found[side]["took_ms"][i] for i in chosen], 50))
        entry["paired"] = paired([found["open"]["ms"][i] for i in chosen], [found["keys"]["ms"][i] for i in chosen],
                                 args.seed)  # fmt: skip
        figures[kind] = entry
        low, high = entry["paired"]["median_diff_ci95_ms"]
        rows.append([kind, len(chosen), entry["open"]["p50_ms"], entry["keys"]["p50_ms"], entry["open"]["p95_ms"],
                     entry["keys"]["p95_ms"], entry["paired"]["median_diff_ms"], f"{low:+.2f} .. {high:+.2f}",
                     f"{100 * entry['paired']['share_keys_slower']:.0f} %"])  # fmt: skip

    print_facts("machine", facts)
    print_table(
        f"hybrid search over REST, k {args.k}: open vs a read key (keys enforced: {facts['keys_enforced']})",
        ["queries", "n", "open p50", "keys p50", "open p95", "keys p95", "median diff", "95 % CI", "keys slower"],
        rows,
    )
    payload = {
        "benchmark": "auth_cost",
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": facts,
        "data": {"documents": len(corpus), "queries": len(queries), "kinds": {k: kinds.count(k) for k in set(kinds)}},
        "figures": figures,
    }
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
