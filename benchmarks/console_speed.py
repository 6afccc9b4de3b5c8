"""The console's pages against the JSON endpoints they draw from: each page's server time next to the sum of its
endpoints' (Server-Timing `total`, MEMORA_SERVER_TIMING), the two taking turns in a random order each round, so
machine noise hits both. Goal (issue 17): every page within 2x of its endpoints.

Part 1, a collection of --documents NFCorpus documents (/work/shared/data/nfcorpus; tests/fixtures/beir when absent),
one chunk each with its vector by the local model, and a dataset of SMS messages (/work/shared/data/labeled; a
synthetic one when absent) split and snapshotted twice. Search pages run NFCorpus queries, half keywords (2-4
words), half questions of 10-20 words (benchmarks/load.py); the compare page's second column uses RRF.

The evaluation pages show a stored `memora eval --report` run of up to 50 judged NFCorpus test queries.

Part 2, the collection page at scale: --big-chunks chunks in documents of 10 (no vectors: no page here reads them),
written by SQL, 0.1% of the documents failed and 0.1% pending. Its pages against their endpoints, and the count of
documents by status as the page reads it (memora.document_count) against counting the documents (the GROUP BY it
replaced).

    .venv/bin/python benchmarks/console_speed.py --json benchmarks/results/console_speed.json
    .venv/bin/python benchmarks/console_speed.py --documents 200 --rounds 10 --big-chunks 20000   # quick
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from common import code_version, machine, print_facts, print_table, progress, scratch_database, server_facts
from common import write_json as write_figures
from fastapi.testclient import TestClient
from load import FIXTURES, NFCORPUS, make_queries, read_jsonl
from sqlalchemy import text

from app import cursors
from app.api.main import create_app
from app.config import Settings
from app.db.engine import make_engine

SMS = Path("/work/shared/data/labeled/sms-spam.csv")
COLLECTION, BIG, DATASET = "kb", "big", "sms"
Request = tuple[str, str, dict[str, Any] | None]  # method, path, JSON body
SEARCH_INCLUDE = ["text", "metadata", "scores", "highlights", "sql"]


def server_ms(response: Any) -> float:
    """The app's own time for RESPONSE, from its Server-Timing header's `total`."""
    response.raise_for_status()
    for part in response.headers["server-timing"].split(","):
        name, _, rest = part.strip().partition(";dur=")
        if name == "total":
            return float(rest.split(";")[0])
    raise AssertionError(f"no total in {response.headers['server-timing']}")


def timed(client: TestClient, requests: list[Request]) -> float:
    return sum(server_ms(client.request(method, path, json=body)) for method, path, body in requests)


def compare(
    client: TestClient, name: str, make: Callable[[int], tuple[list[Request], list[Request]]], rounds: int, rng: Any
) -> dict[str, Any]:
    """ROUNDS of (page, endpoints) as MAKE(round) gives them, in a random order each round, after two warm-ups."""
    for i in range(2):
        page, endpoints = make(i)
        timed(client, page), timed(client, endpoints)
    pages, jsons = [], []
    for i in range(rounds):
        page, endpoints = make(i)
        if rng.random() < 0.5:
            pages.append(timed(client, page))
            jsons.append(timed(client, endpoints))
        else:
            jsons.append(timed(client, endpoints))
            pages.append(timed(client, page))
    ratios = [p / j for p, j in zip(pages, jsons, strict=True)]
    return {
        "page": name,
        "page_p50_ms": round(statistics.median(pages), 2),
        "endpoints_p50_ms": round(statistics.median(jsons), 2),
        "ratio_p50": round(statistics.median(ratios), 2),
        "ratio_p90": round(sorted(ratios)[int(0.9 * (len(ratios) - 1))], 2),
        "endpoints": [f"{m} {p.split('?')[0]}" for m, p, _ in make(0)[1]],
        "rounds": rounds,
    }


def store_corpus(client: TestClient, documents: int, bar: Any) -> list[dict[str, Any]]:
    """NFCorpus's first DOCUMENTS in collection kb, one chunk each, vectors by the local model."""
    from app.embeddings.local import LocalEmbedder

    source = NFCORPUS if (NFCORPUS / "corpus.jsonl").exists() else FIXTURES
    corpus = read_jsonl(source / "corpus.jsonl")[:documents]
    embedder = LocalEmbedder()
    body = {"name": COLLECTION, "embedding_provider": "local", "dimensions": embedder.dimensions}
    client.post("/v1/collections", json=body).raise_for_status()
    task = bar.add_task("storing documents (vectors by the local model)", total=len(corpus))
    for start in range(0, len(corpus), 64):
        batch = corpus[start : start + 64]
        texts = [f"{doc.get('title', '')}\n{doc['text']}".strip()[:2000] for doc in batch]
        vectors = embedder.embed(texts)
        docs = [
            {"external_id": doc["_id"], "title": doc.get("title") or doc["_id"], "content": body,
             "chunks": [{"text": body, "embedding": [float(x) for x in vector]}]}
            for doc, body, vector in zip(batch, texts, vectors, strict=True)
        ]  # fmt: skip
        client.post(f"/v1/collections/{COLLECTION}/documents", json=docs).raise_for_status()
        bar.advance(task, len(batch))
    bar.remove_task(task)
    return corpus


def store_dataset(client: TestClient) -> None:
    """Dataset sms: the SMS spam messages (or 2,000 made-up ones), split, with snapshots before and after a split."""
    if SMS.exists():
        with SMS.open(encoding="utf-8", errors="replace") as handle:
            reader = csv.DictReader(handle)  # columns: (index), spam (0 or 1), text
            rows = [{"text": r["text"], "label": "spam" if r["spam"] == "1" else "ham"} for r in reader if r["text"]]
    else:
        rows = [{"text": f"message {i} about {'prizes' if i % 7 else 'lunch'}", "label": "spam" if i % 7 else "ham"}
                for i in range(2000)]  # fmt: skip
    client.post("/v1/datasets", json={"name": DATASET, "task": "classification"}).raise_for_status()
    for start in range(0, len(rows), 1000):
        client.post(f"/v1/datasets/{DATASET}/examples", json=rows[start : start + 1000]).raise_for_status()
    client.post(f"/v1/datasets/{DATASET}/snapshots", json={"name": "v1"}).raise_for_status()
    client.post(f"/v1/datasets/{DATASET}/split", json={"ratios": {"train": 0.8, "validation": 0.1, "test": 0.1},
                                                      "seed": 7}).raise_for_status()  # fmt: skip
    client.post(f"/v1/datasets/{DATASET}/snapshots", json={"name": "v2"}).raise_for_status()


def store_evaluation(settings: Settings, corpus: list[dict[str, Any]], bar: Any) -> int:
    """A stored `memora eval --report` of collection kb (the latency sweep too) on up to 50 of NFCorpus's judged test
    queries whose relevant documents are stored; its run id."""
    import tempfile

    from app.eval import service
    from app.eval.repository import FusionParams
    from app.eval.runner import evaluate

    source = NFCORPUS if (NFCORPUS / "qrels" / "test.tsv").exists() else FIXTURES
    stored = {doc["_id"] for doc in corpus}
    qrels = {q: {d: g for d, g in docs.items() if d in stored} for q, docs in
             service.load_qrels(source / "qrels" / "test.tsv").items()}  # fmt: skip
    judged = service.judged_queries(
        service.load_queries(source / "queries.jsonl"), {q: j for q, j in qrels.items() if j}
    )
    task = bar.add_task("a stored evaluation run (with the latency sweep)", total=None)
    engine = make_engine(settings, "bench")
    with tempfile.TemporaryDirectory() as report:
        run = evaluate(
            settings, engine, COLLECTION, judged[:50], modes=["text", "vector", "hybrid"], depth=100,
            params=FusionParams(), step=lambda _what, _total: lambda: None, report_dir=Path(report), store=True,
        )  # fmt: skip
    engine.dispose()
    bar.remove_task(task)
    assert run.run_id is not None
    return run.run_id


def part_one(
    client: TestClient, corpus: list[dict[str, Any]], queries: list[str], run: int, rounds: int, rng: Any
) -> list[Any]:
    c, d = f"/v1/collections/{COLLECTION}", f"/v1/datasets/{DATASET}"
    doc = corpus[len(corpus) // 2]["_id"]

    def page(path: str, **params: Any) -> Request:
        return ("GET", f"{path}?{urlencode(params)}", None)

    def search(query: str, **more: Any) -> Request:
        return ("POST", f"{c}/search", {"query": query, "include": SEARCH_INCLUDE, **more})

    cases: dict[str, Callable[[int], tuple[list[Request], list[Request]]]] = {
        "home": lambda i: (
            [("GET", "/console", None)],
            [("GET", "/v1/collections", None), ("GET", "/v1/datasets", None)],
        ),
        "collection": lambda i: (
            [("GET", f"/console/collections/{COLLECTION}", None)],
            [("GET", c, None), ("GET", f"{c}/documents?limit=50", None)],
        ),
        "document": lambda i: (
            [("GET", f"/console/collections/{COLLECTION}/document?id={doc}", None)],
            [
                ("GET", f"{c}/documents/{doc}", None),
                ("GET", f"{c}/chunks?document={doc}&limit=100&text_chars=2000", None),
            ],
        ),
        "search": lambda i: (
            [page(f"/console/collections/{COLLECTION}/search", query=queries[i])],
            [search(queries[i])],
        ),
        "search, two columns": lambda i: (
            [page(f"/console/collections/{COLLECTION}/search", query=queries[i], compare=1, **{"b.fusion": "rrf"})],
            [search(queries[i]), search(queries[i], fusion="rrf")],
        ),
        "evaluations": lambda i: (
            [("GET", f"/console/collections/{COLLECTION}/evaluations", None)],
            [("GET", f"{c}/evaluations", None)],
        ),
        "evaluation run": lambda i: (
            [("GET", f"/console/collections/{COLLECTION}/evaluations/{run}", None)],
            [("GET", f"{c}/evaluations/{run}", None)],
        ),
        "dataset": lambda i: (
            [("GET", f"/console/datasets/{DATASET}", None)],
            [("GET", d, None), ("GET", f"{d}/labels", None), ("GET", f"{d}/examples?limit=50", None)],
        ),
        "snapshots": lambda i: (
            [("GET", f"/console/datasets/{DATASET}/snapshots", None)],
            [("GET", f"{d}/snapshots", None)],
        ),
        "snapshot diff": lambda i: (
            [("GET", f"/console/datasets/{DATASET}/diff?snapshot=v2&against=v1", None)],
            [("GET", f"{d}/snapshots/v2/diff?against=v1&limit=50", None)],
        ),
        "duplicates": lambda i: (
            [("GET", f"/console/datasets/{DATASET}/duplicates", None)],
            [("POST", f"{d}/dedup", {"limit": 50})],
        ),
    }
    return [compare(client, name, make, rounds, rng) for name, make in cases.items()]


def store_big(url: str, chunks: int, bar: Any) -> dict[str, Any]:
    """Collection big: CHUNKS chunks, 10 per document, written by SQL (the triggers keep statistics, postings and
    counts as for any write); 0.1% of documents failed, 0.1% pending."""
    engine = make_engine(Settings(database_url=url), "bench")
    documents = max(1, chunks // 10)
    started = time.perf_counter()
    task = bar.add_task(f"writing {chunks:,} chunks by SQL", total=None)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions) "
            "VALUES (:name, 'hashing', 'hashing', 8)"), {"name": BIG})  # fmt: skip
        cid = conn.execute(text("SELECT id FROM memora.collection WHERE name = :n"), {"n": BIG}).scalar_one()
        conn.execute(text("""
            INSERT INTO memora.document (collection_id, external_id, title, content, status, error)
            SELECT :c, 'doc-' || i, 'Document ' || i, 'words of document ' || i,
                   CASE WHEN i % 1000 = 1 THEN 'failed' WHEN i % 1000 = 2 THEN 'pending' ELSE 'ready' END,
                   CASE WHEN i % 1000 = 1 THEN 'the provider timed out' END
            FROM generate_series(1, :n) i"""), {"c": cid, "n": documents})  # fmt: skip
        conn.execute(text("""
            INSERT INTO memora.chunk (collection_id, document_id, ordinal, text, char_start, char_end, content_hash,
                                      language)
            SELECT d.collection_id, d.id, o, t, 0, length(t), sha256(convert_to(t, 'UTF8')), 'english'
            FROM memora.document d, generate_series(0, 9) o,
                 LATERAL (SELECT 'term' || (d.id * 7 + o) % 5000 || ' word' || o || ' shared') x (t)
            WHERE d.collection_id = :c"""), {"c": cid})  # fmt: skip
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()
    bar.remove_task(task)
    return {"documents": documents, "chunks": documents * 10, "write_seconds": round(time.perf_counter() - started, 1)}


def part_two(client: TestClient, url: str, chunks: int, rounds: int, rng: Any) -> list[Any]:
    c, at = f"/v1/collections/{BIG}", f"({chunks:,} chunks)"
    with make_engine(Settings(database_url=url), "bench").connect() as conn:  # a page halfway through
        middle = conn.execute(text("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY d.id) FROM memora.document d "
                                   "JOIN memora.collection c ON c.id = d.collection_id WHERE c.name = :n"),
                              {"n": BIG}).scalar_one()  # fmt: skip
    cursor = cursors.encode(middle)
    cases: dict[str, Callable[[int], tuple[list[Request], list[Request]]]] = {
        f"collection {at}": lambda i: (
            [("GET", f"/console/collections/{BIG}", None)],
            [("GET", c, None), ("GET", f"{c}/documents?limit=50", None)],
        ),
        f"failed documents {at}": lambda i: (
            [("GET", f"/console/collections/{BIG}?status=failed", None)],
            [("GET", c, None), ("GET", f"{c}/documents?limit=50&status=failed", None)],
        ),
        f"a page halfway in {at}": lambda i: (
            [("GET", f"/console/collections/{BIG}?cursor={cursor}", None)],
            [("GET", c, None), ("GET", f"{c}/documents?limit=50&cursor={cursor}", None)],
        ),
        f"document {at}": lambda i: (
            [("GET", f"/console/collections/{BIG}/document?id=doc-77", None)],
            [("GET", f"{c}/documents/doc-77", None), ("GET", f"{c}/chunks?document=doc-77&text_chars=2000", None)],
        ),
    }
    return [compare(client, name, make, rounds, rng) for name, make in cases.items()]


def counting(url: str, rounds: int, rng: Any) -> dict[str, Any]:
    """Documents by status of collection big: the appended counts the pages read, against counting documents."""
    engine = make_engine(Settings(database_url=url), "bench")
    queries = {
        "appended counts": "SELECT status, sum(n) FROM memora.document_count WHERE collection_id = :c "
        "GROUP BY status HAVING sum(n) <> 0",
        "GROUP BY over documents": "SELECT status, count(*) FROM memora.document WHERE collection_id = :c "
        "GROUP BY status",
    }
    times: dict[str, list[float]] = {name: [] for name in queries}
    with engine.connect() as conn:
        cid = conn.execute(text("SELECT id FROM memora.collection WHERE name = :n"), {"n": BIG}).scalar_one()
        answers = {name: dict(conn.execute(text(q), {"c": cid}).all()) for name, q in queries.items()}
        assert {k: int(v) for k, v in answers["appended counts"].items()} == answers["GROUP BY over documents"]
        for _ in range(rounds):
            for name in rng.sample(list(queries), len(queries)):
                start = time.perf_counter()
                conn.execute(text(queries[name]), {"c": cid}).all()
                times[name].append((time.perf_counter() - start) * 1000)
        rows = conn.execute(text("SELECT count(*) FROM memora.document_count WHERE collection_id = :c"), {"c": cid})
        count_rows = rows.scalar_one()
    engine.dispose()
    p50 = {name: round(statistics.median(ms), 3) for name, ms in times.items()}
    return {"p50_ms": p50, "count_rows": count_rows, "speedup": round(p50["GROUP BY over documents"]
                                                                      / p50["appended counts"], 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--big-chunks", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    payload: dict[str, Any] = {"benchmark": "console_speed", "code": code_version(), "machine": machine(),
                               "parameters": vars(args) | {"json": str(args.json)}}  # fmt: skip
    with scratch_database("console_speed") as db, progress() as bar:
        payload["server"] = server_facts(db.url)
        settings = db.settings.model_copy(update={"server_timing": True, "rate_limit_per_minute": 0})
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            corpus = store_corpus(client, args.documents, bar)
            store_dataset(client)
            source = NFCORPUS if (NFCORPUS / "queries.jsonl").exists() else FIXTURES
            queries = make_queries(corpus, read_jsonl(source / "queries.jsonl"), random.Random(args.seed))
            queries = (queries * (1 + (args.rounds + 2) // max(1, len(queries))))[: args.rounds + 2]
            task = bar.add_task("pages and their endpoints, taking turns", total=None)
            run = store_evaluation(settings, corpus, bar)
            payload["pages"] = part_one(client, corpus, queries, run, args.rounds, rng)
            bar.remove_task(task)
            payload["big"] = store_big(db.url, args.big_chunks, bar)
            payload["pages_at_scale"] = part_two(client, db.url, payload["big"]["chunks"], args.rounds, rng)
            payload["counting"] = counting(db.url, args.rounds * 5, rng)
    rows = [[p["page"], p["page_p50_ms"], p["endpoints_p50_ms"], p["ratio_p50"], p["ratio_p90"]]
            for p in payload["pages"] + payload["pages_at_scale"]]  # fmt: skip
    print_facts("machine", payload["machine"] | payload["code"])
    print_table("console pages against their endpoints (server ms, p50)",
                ["page", "page ms", "endpoints ms", "ratio p50", "ratio p90"], rows)  # fmt: skip
    print_facts("documents by status (collection big)", payload["counting"]["p50_ms"] | {
        "count rows": payload["counting"]["count_rows"], "speedup": payload["counting"]["speedup"]})  # fmt: skip
    write_figures(args.json, payload)


if __name__ == "__main__":
    main()
