"""Load test: concurrent hybrid-search clients against `memora serve` on loopback, alone, mixed with uploads, and
under a search statement timeout with a deliberately slow query mixed in. Reports req/s, latency percentiles and
errors by status per phase.

    .venv/bin/python benchmarks/load.py                      # 3 phases of 60 s, 20 clients, JSON to results/
    .venv/bin/python benchmarks/load.py --seconds 5          # a quick try
    .venv/bin/python benchmarks/load.py --url http://127.0.0.1:8000 --collection kb   # a server you started

Without --url: a scratch database (MEMORA_DATABASE_URL's server, else an embedded one), --documents of NFCorpus
(/work/shared/data/nfcorpus; tests/fixtures/beir when absent) stored with one chunk each, its vector computed here
by the local model (the collection's own, so the server embeds queries with it), then `memora serve` (API and
worker) started for phases 1-2 and again with MEMORA_SEARCH_STATEMENT_TIMEOUT_MS=--timeout-ms for phase 3.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from common import (
    REPO_ROOT,
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

NFCORPUS = Path("/work/shared/data/nfcorpus")
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "beir"
QUESTION_STARTS = ("what is known about", "does the evidence show that", "how does", "what do studies say about")
CHUNK_CHARS = 1500


@dataclass
class Phase:
    """One phase's requests: (kind, status or transport error name, latency in ms) each, and its wall time."""

    name: str
    seconds: float = 0.0
    requests: list[tuple[str, str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, status: str, ms: float) -> None:
        with self.lock:
            self.requests.append((kind, status, ms))

    def summary(self) -> dict[str, Any]:
        by_kind: dict[str, list[float]] = defaultdict(list)
        statuses: dict[str, Counter[str]] = defaultdict(Counter)
        for kind, status, ms in self.requests:
            statuses[kind][status] += 1
            if status.startswith("2"):
                by_kind[kind].append(ms)
        kinds: dict[str, Any] = {}
        for kind in sorted(statuses):
            ok = by_kind.get(kind, [])
            total = sum(statuses[kind].values())
            kinds[kind] = {
                "requests": total,
                "ok": len(ok),
                "req_per_s": round(total / self.seconds, 2) if self.seconds else None,
                "ok_per_s": round(len(ok) / self.seconds, 2) if self.seconds else None,
                "p50_ms": _percentile(ok, 50),
                "p95_ms": _percentile(ok, 95),
                "p99_ms": _percentile(ok, 99),
                "max_ms": round(max(ok), 1) if ok else None,
                "by_status": dict(sorted(statuses[kind].items())),
            }
        errors = Counter(s for _, s, _ in self.requests if not s.startswith("2"))
        return {"seconds": round(self.seconds, 2), "kinds": kinds, "errors_by_status": dict(sorted(errors.items()))}


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


# The data: documents with a vector each, search queries of two shapes, a slow query.


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = []
    with path.open() as lines:
        for line in lines:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def make_queries(corpus: list[dict[str, Any]], queries: list[dict[str, Any]], rng: random.Random) -> list[str]:
    """Keyword queries (2-4 words) and questions of 10-20 words, half and half, from the queries and the corpus's
    vocabulary."""
    vocabulary = [w for doc in corpus[:500] for w in doc["text"].split() if len(w) > 4 and w.isalpha()]
    made = []
    for query in queries:
        words = query["text"].split()
        made.append(" ".join(words[:4]) if len(words) >= 2 else f"{query['text']} {rng.choice(vocabulary)}")
        question = f"{rng.choice(QUESTION_STARTS)} {query['text']}".split()
        while len(question) < rng.randint(10, 20):
            question.append(rng.choice(vocabulary))
        made.append(" ".join(question[:20]) + "?")
    rng.shuffle(made)
    return made


def slow_query(corpus: list[dict[str, Any]], chars: int) -> dict[str, Any]:
    """A search that does as much as one request may: the longest query allowed, made of the corpus's commonest
    words (long posting lists), exact vector comparison with every chunk, the most candidates and results."""
    counts = Counter(w for doc in corpus for w in doc["text"].split() if w.isalpha())
    text = ""
    for word, _ in counts.most_common():
        if len(text) + len(word) + 1 > chars:
            break
        text += word + " "
    return {"query": text.strip(), "mode": "hybrid", "exact": True, "candidates": 10_000, "k": 100}


def store(url: str, collection: str, corpus: list[dict[str, Any]], bar: Any) -> None:
    """The collection with CORPUS, one chunk per document, vectors by the local model, every document ready."""
    from app.embeddings.local import LocalEmbedder

    embedder = LocalEmbedder()
    with httpx.Client(base_url=url, timeout=120) as client:
        body = {"name": collection, "embedding_provider": "local", "dimensions": embedder.dimensions}
        client.post("/v1/collections", json=body).raise_for_status()
        task = bar.add_task("storing documents (vectors by the local model)", total=len(corpus))
        for start in range(0, len(corpus), 64):
            batch = corpus[start : start + 64]
            texts = [f"{doc.get('title', '')}\n{doc['text']}".strip()[:CHUNK_CHARS] for doc in batch]
            vectors = embedder.embed(texts)
            documents = [
                {"external_id": doc["_id"], "title": doc.get("title") or doc["_id"], "content": text,
                 "chunks": [{"text": text, "embedding": [float(x) for x in vector]}]}
                for doc, text, vector in zip(batch, texts, vectors, strict=True)
            ]  # fmt: skip
            client.post(f"/v1/collections/{collection}/documents", json=documents).raise_for_status()
            bar.advance(task, len(batch))
        bar.remove_task(task)


# The server and the clients.


def run_phase(
    phase: Phase,
    url: str,
    collection: str,
    *,
    clients: int,
    seconds: float,
    queries: list[str],
    corpus: list[dict[str, Any]],
    uploaders: int = 0,
    slow: dict[str, Any] | None = None,
    slow_clients: int = 0,
    bar: Any,
) -> None:
    """CLIENTS threads, each on its own keep-alive connection, for SECONDS: UPLOADERS of them post 5 documents at a
    time (the worker then embeds them), SLOW_CLIENTS send SLOW back to back, the rest hybrid searches."""
    search_path = f"/v1/collections/{collection}/search"
    upload_path = f"/v1/collections/{collection}/documents"
    stop = threading.Event()
    uploads = iter(range(10**9))
    upload_lock = threading.Lock()

    def client(index: int) -> None:
        rng = random.Random(index)
        kind = "upload" if index < uploaders else "slow" if index < uploaders + slow_clients else "search"
        with httpx.Client(base_url=url, timeout=120) as http:
            while not stop.is_set():
                if kind == "search":
                    method, path, body = "POST", search_path, {"query": rng.choice(queries), "k": 10}
                elif kind == "slow":
                    method, path, body = "POST", search_path, slow or {}
                else:
                    with upload_lock:
                        n = next(uploads)
                    picked = [corpus[(n * 5 + i) % len(corpus)] for i in range(5)]
                    body = [  # type: ignore[assignment]
                        {"external_id": f"load-{n}-{i}", "title": doc.get("title") or doc["_id"],
                         "content": doc["text"][:CHUNK_CHARS]}
                        for i, doc in enumerate(picked)
                    ]  # fmt: skip
                    method, path = "POST", upload_path
                start = time.perf_counter()
                try:
                    status = str(http.request(method, path, json=body).status_code)
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                phase.record(kind, status, 1000 * (time.perf_counter() - start))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    task = bar.add_task(f"{phase.name}: {clients} clients", total=round(seconds))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while (elapsed := time.perf_counter() - started) < seconds:
        bar.update(task, completed=min(round(elapsed), round(seconds)))
        time.sleep(0.25)
    stop.set()
    for thread in threads:
        thread.join()
    # Requests still running when the time ran out count, and so does the time they took.
    phase.seconds = time.perf_counter() - started
    bar.remove_task(task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="length of each phase (default 60)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--uploaders", type=int, default=2, help="of the clients, how many upload in phase 2")
    parser.add_argument("--slow-clients", type=int, default=1, help="of the clients, how many send the slow query")
    parser.add_argument("--timeout-ms", type=int, default=500, help="the search statement timeout of phase 3")
    parser.add_argument("--documents", type=int, default=3162, help="documents to store (default: all NFCorpus)")
    parser.add_argument("--data", type=Path, default=NFCORPUS if NFCORPUS.exists() else FIXTURES)
    parser.add_argument("--url", help="target a running server (its data present) instead of starting one")
    parser.add_argument("--collection", default="load", help="the collection searched (default load)")
    parser.add_argument("--max-query-chars", type=int, default=4000, help="the slow query's length (the limit)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "load.json")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    corpus = read_jsonl(args.data / "corpus.jsonl", args.documents)
    queries = make_queries(corpus, read_jsonl(args.data / "queries.jsonl"), rng)
    slow = slow_query(corpus, args.max_query_chars)
    facts: dict[str, Any] = {**machine(), **code_version()}
    phases: list[Phase] = []
    common = {"clients": args.clients, "seconds": args.seconds, "queries": queries, "corpus": corpus}

    def phase(name: str, url: str, bar: Any, **extra: Any) -> None:
        phases.append(Phase(name))
        run_phase(phases[-1], url, args.collection, bar=bar, **common, **extra)

    third = f"3 search + slow query, timeout {args.timeout_ms} ms"
    if args.url:
        facts["server"] = f"{args.url} (started by hand; its statement timeouts are its own)"
        with progress() as bar:
            phase("1 search", args.url, bar)
            phase("2 search + uploads", args.url, bar, uploaders=args.uploaders)
            phase(third, args.url, bar, slow=slow, slow_clients=args.slow_clients)
    else:
        with scratch_database("memora_load") as db:
            facts |= {**server_facts(db.url), "server": db.server}
            with memora_serve(db.url) as url, progress() as bar:
                store(url, args.collection, corpus, bar)
                phase("1 search", url, bar)
                phase("2 search + uploads", url, bar, uploaders=args.uploaders)
            # A server of its own with the timeout, and no worker still embedding phase 2's uploads beside it.
            timeout = {"MEMORA_SEARCH_STATEMENT_TIMEOUT_MS": str(args.timeout_ms), "MEMORA_WORKER_IN_SERVE": "false"}
            with memora_serve(db.url, **timeout) as url, progress() as bar:
                phase(third, url, bar, slow=slow, slow_clients=args.slow_clients)

    rows: list[list[Any]] = []
    for done in phases:
        for kind, figures in done.summary()["kinds"].items():
            rows.append([done.name, kind, figures["requests"], figures["req_per_s"], figures["p50_ms"],
                         figures["p95_ms"], figures["p99_ms"], json.dumps(figures["by_status"])])  # fmt: skip
    print_facts("machine", facts)
    print_table(
        f"load: {args.clients} clients, {args.seconds:g} s per phase",
        ["phase", "kind", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "statuses"],
        rows,
    )
    payload = {
        "benchmark": "load",
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": facts,
        "data": {"documents": len(corpus), "queries": len(queries), "slow_query_chars": len(slow["query"])},
        "phases": {done.name: done.summary() for done in phases},
    }
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
