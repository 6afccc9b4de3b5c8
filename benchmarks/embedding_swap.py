"""Swap under load: a collection's vectors moved to a new embedding version while clients search and upload through
REST, then rolled back and the new version dropped. Reports per phase the searches, errors, empty result lists,
latency and the embedding_version the answers name; how long the cutover and the rollback requests take and how
long after each every client gets answers from the version made active; the backfill's duration and rate; the disk
of each version before the swap, during it and after the drop.

    .venv/bin/python benchmarks/embedding_swap.py                    # 10,000 chunks, phases of 60 s
    .venv/bin/python benchmarks/embedding_swap.py --quick            # 2,000 chunks, phases of 10 s: a smoke run
    .venv/bin/python benchmarks/embedding_swap.py --v2 local         # to MiniLM: its backfill alone ~10 min

A scratch database (MEMORA_DATABASE_URL's server, else an embedded one) and `memora serve` (the API with its worker,
which ingests the uploads and backfills versions) on loopback. The collection: --chunks chunks of the generated
corpus of benchmarks/search_corpus.py (documents of 20 chunks of 60 words), posted with vectors computed here by
version 1's model (--v1, default the hashing provider: the local model takes minutes for 10,000 chunks on 2 cores).
Version 2 (--v2) is hashing with 384 dimensions by default: the local model's backfill ran at 17 vectors/s beside
the searches on 2 cores (90/s alone), which makes 10 min for 10,000 chunks.
Then --clients threads send hybrid searches back to back (keyword queries of 3-8 words and questions of 10-20 words,
half and half, drawn as search_speed.py draws them) and one uploader posts --upload-documents new documents every
--upload-every seconds, throughout these phases:

    before       --seconds
    during       POST .../embeddings (version 2, --v2) until GET .../embeddings/2 says ready
    after        from the return of POST .../embeddings/2/activate (the cutover), --seconds
    rolled back  from the return of POST .../embeddings/1/activate (the rollback), --seconds; DELETE
                 .../embeddings/2 is sent at its start

An activation refused with 409 (chunks uploaded since the version was ready lack its vectors) is sent again once the
version is ready again; the refusals are recorded. A search counts in the phase it was sent in.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from common import (
    REPO_ROOT,
    code_version,
    console,
    machine,
    memora_serve,
    print_facts,
    print_table,
    progress,
    scratch_database,
    server_facts,
    write_json,
)
from psycopg import sql
from search_corpus import Generator, read_question_shapes, read_sources

from app.config import Settings
from app.db.models import embedding_partition, version_table
from app.embeddings.registry import default_model, get_embedder
from app.ingest.pipeline import embedding_input

COLLECTION = "swap"
CHUNKS_PER_DOCUMENT = 20
WORDS = 60
PHASES = ("before", "during", "after", "rolled back")


def version_spec(text: str) -> dict[str, Any]:
    """PROVIDER[:DIMENSIONS] (hashing:384, local) as the fields of a collection or a version."""
    provider, _, dimensions = text.partition(":")
    try:
        model, default_dimensions = default_model(provider)
        return {"embedding_provider": provider, "embedding_model": model,
                "dimensions": int(dimensions) if dimensions else default_dimensions}  # fmt: skip
    except Exception as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {getattr(exc, 'message', exc)}") from None


def described(spec: dict[str, Any]) -> str:
    return f"{spec['embedding_provider']} {spec['embedding_model']} {spec['dimensions']}d"


@dataclass(frozen=True)
class Request:
    """One request of the traffic: the phase it was sent in, when it was sent and answered (perf_counter), its
    status (or transport error), and for a search the version its answer names and how many results it has."""

    client: int
    phase: str
    sent: float
    returned: float
    status: str
    version: int | None = None
    results: int | None = None

    @property
    def ms(self) -> float:
        return 1000 * (self.returned - self.sent)


@dataclass
class Traffic:
    """CLIENTS searching threads and one uploader, each on its own keep-alive connection, until stop()."""

    url: str
    queries: list[str]
    uploads: list[list[str]]  # chunk texts of the documents to upload, used in turn
    clients: int
    upload_every: float
    upload_documents: int
    phase: str = PHASES[0]
    starts: list[tuple[str, float]] = field(default_factory=list)  # (phase, perf_counter) at each change
    searches: list[Request] = field(default_factory=list)
    posted: list[Request] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.enter(PHASES[0])
        self._threads = [threading.Thread(target=self._search, args=(i,), daemon=True) for i in range(self.clients)]
        self._threads.append(threading.Thread(target=self._upload, daemon=True))
        for thread in self._threads:
            thread.start()

    def enter(self, phase: str) -> None:
        self.phase = phase
        self.starts.append((phase, time.perf_counter()))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.starts.append(("end", time.perf_counter()))

    def _search(self, index: int) -> None:
        rng = random.Random(index)
        path = f"/v1/collections/{COLLECTION}/search"
        with httpx.Client(base_url=self.url, timeout=120) as http:
            while not self._stop.is_set():
                phase, sent = self.phase, time.perf_counter()
                version = results = None
                try:
                    response = http.post(path, json={"query": rng.choice(self.queries), "k": 10, "mode": "hybrid"})
                    status = str(response.status_code)
                    if response.status_code == 200:
                        body = response.json()
                        version, results = body.get("embedding_version"), len(body["results"])
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                self.searches.append(Request(index, phase, sent, time.perf_counter(), status, version, results))

    def _upload(self) -> None:
        path = f"/v1/collections/{COLLECTION}/documents"
        with httpx.Client(base_url=self.url, timeout=120) as http:
            n = 0
            while not self._stop.is_set():
                phase, sent = self.phase, time.perf_counter()
                body = []
                for _ in range(self.upload_documents):
                    chunks = self.uploads[n % len(self.uploads)]
                    body.append({"external_id": f"upload-{n}", "title": f"upload {n}", "content": "\n\n".join(chunks)})
                    n += 1
                try:
                    status = str(http.post(path, json=body).status_code)
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                self.posted.append(Request(-1, phase, sent, time.perf_counter(), status))
                self._stop.wait(max(0.0, self.upload_every - (time.perf_counter() - sent)))


# The collection, and what the database says of it.


def load(url: str, documents: list[list[str]], spec: dict[str, Any], settings: Settings, bar: Any) -> float:
    """Collection COLLECTION with DOCUMENTS (chunk texts each), each chunk with its vector by version 1's model
    computed here (bring your own embeddings: written at once, nothing for the worker). Returns the seconds taken."""
    start = time.perf_counter()
    embedder = get_embedder(spec["embedding_provider"], spec["embedding_model"], spec["dimensions"], settings)
    with httpx.Client(base_url=url, timeout=300) as client:
        client.post("/v1/collections", json={"name": COLLECTION, **spec}).raise_for_status()
        task = bar.add_task(f"storing documents, vectors by {described(spec)}", total=sum(map(len, documents)))
        for first in range(0, len(documents), 10):
            body = []
            for number, chunks in enumerate(documents[first : first + 10], start=first + 1):
                title = f"doc {number}"
                vectors = np.asarray(embedder.embed([embedding_input(title, text) for text in chunks]), np.float32)
                body.append({"external_id": f"doc-{number}", "title": title, "content": "\n\n".join(chunks),
                             "chunks": [{"text": text, "embedding": vector.tolist()}
                                        for text, vector in zip(chunks, vectors, strict=True)]})  # fmt: skip
            client.post(f"/v1/collections/{COLLECTION}/documents", json=body).raise_for_status()
            bar.advance(task, sum(len(doc["chunks"]) for doc in body))
        bar.remove_task(task)
    return time.perf_counter() - start


class Database:
    """The scratch database's own view: the collection's id, its partition's size, its uploads' statuses."""

    def __init__(self, url: str, schema: str) -> None:
        self.url, self.schema = url, schema
        with psycopg.connect(url) as conn:
            query = sql.SQL("SELECT id FROM {} WHERE name = %s").format(sql.Identifier(schema, "collection"))
            self.collection_id = conn.execute(query, (COLLECTION,)).fetchone()[0]  # type: ignore[index]

    def partition_bytes(self) -> int:
        """Disk of the collection's embedding partition: every version's table and indexes (a partitioned table
        has no storage of its own, so pg_total_relation_size of it alone says 0)."""
        name = f"{self.schema}.{embedding_partition(self.collection_id)}"
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree(%s::regclass)", (name,)
            ).fetchone()
        return int(row[0])  # type: ignore[index]

    def table_exists(self, number: int) -> bool:
        with psycopg.connect(self.url) as conn:
            name = f"{self.schema}.{version_table(self.collection_id, number)}"
            return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]  # type: ignore[index,no-any-return]

    def upload_statuses(self) -> dict[str, int]:
        query = sql.SQL("SELECT status, count(*) FROM {} WHERE collection_id = %s AND external_id LIKE %s "
                        "GROUP BY status ORDER BY status").format(sql.Identifier(self.schema, "document"))  # fmt: skip
        with psycopg.connect(self.url) as conn:
            return dict(conn.execute(query, (self.collection_id, "upload-%")).fetchall())


# The swap, driven through REST while the traffic runs.


class Swap:
    def __init__(self, admin: httpx.Client, traffic: Traffic, database: Database, bar: Any) -> None:
        self.admin, self.traffic, self.database, self.bar = admin, traffic, database, bar
        self.base = f"/v1/collections/{COLLECTION}/embeddings"

    def hold(self, phase: str, seconds: float, since: float | None = None) -> None:
        """Let the traffic run in PHASE until SECONDS after SINCE (default now), its figures on a status line."""
        since = time.perf_counter() if since is None else since
        task = self.bar.add_task(phase, total=round(seconds))
        while (elapsed := time.perf_counter() - since) < seconds:
            self.bar.update(task, completed=min(round(elapsed), round(seconds)), description=self.status(phase))
            time.sleep(0.25)
        self.bar.remove_task(task)

    def status(self, phase: str) -> str:
        mine = [s for s in self.traffic.searches if s.phase == phase]
        errors = sum(s.status != "200" for s in mine)
        empty = sum(s.results == 0 for s in mine)
        versions = Counter(s.version for s in mine if s.status == "200")
        seen = ", ".join(f"v{v}: {n}" for v, n in sorted(versions.items(), key=lambda item: str(item[0])))
        return f"{phase}: {len(mine)} searches ({seen}), {errors} errors, {empty} empty"

    def versions(self) -> dict[int, dict[str, Any]]:
        response = self.admin.get(self.base)
        response.raise_for_status()
        return {row["number"]: row for row in response.json()}

    def sizes(self) -> dict[str, Any]:
        """Each version's `bytes` as GET .../embeddings reports it, and the partition's size."""
        return {"versions": {str(n): row["bytes"] for n, row in self.versions().items()},
                "partition_bytes": self.database.partition_bytes()}  # fmt: skip

    def wait_ready(self, number: int, timeout: float, task: Any = None) -> dict[str, Any]:
        deadline = time.perf_counter() + timeout
        while True:
            response = self.admin.get(f"{self.base}/{number}")
            response.raise_for_status()
            row = response.json()
            if task is not None:
                self.bar.update(task, completed=row["vectors"], total=row["chunks"], description=self.status("during"))
            if row["status"] == "ready":
                return dict(row)
            if row["status"] == "failed" or time.perf_counter() > deadline:
                raise RuntimeError(f"version {number} is not ready: {row}")
            time.sleep(0.5)

    def activate(self, number: int, timeout: float) -> dict[str, Any]:
        """POST .../NUMBER/activate, again after each 409 once the version is ready again; the last try timed."""
        refusals: list[str] = []
        while True:
            sent = time.perf_counter()
            response = self.admin.post(f"{self.base}/{number}/activate")
            returned = time.perf_counter()
            if response.status_code != 409 or len(refusals) >= 20:
                break
            refusals.append(response.json()["error"]["message"])
            self.wait_ready(number, timeout)
        response.raise_for_status()
        return {"ms": round(1000 * (returned - sent), 1), "sent": sent, "returned": returned, "refusals": refusals}

    def run(self, spec: dict[str, Any], seconds: float, timeout: float) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        self.traffic.start()
        self.hold("before", seconds)
        figures["sizes_before"] = self.sizes()

        self.traffic.enter("during")
        started = time.perf_counter()
        response = self.admin.post(self.base, json=spec)
        response.raise_for_status()
        number = response.json()["number"]
        figures["create_ms"] = round(1000 * (time.perf_counter() - started), 1)
        task = self.bar.add_task("during", total=None)
        row = self.wait_ready(number, timeout, task)
        took = time.perf_counter() - started
        self.bar.remove_task(task)
        figures["backfill"] = {"version": number, "seconds": round(took, 2), "vectors": row["vectors"],
                               "chunks": row["chunks"], "vectors_per_s": round(row["vectors"] / took, 1)}  # fmt: skip
        console.print(f"version {number} ready: {row['vectors']:,} vectors in {took:.1f} s")
        figures["sizes_ready"] = self.sizes()

        figures["cutover"] = cutover = self.activate(number, timeout)
        self.traffic.enter("after")
        console.print(f"cutover: {cutover['ms']} ms, {len(cutover['refusals'])} refusal(s) first")
        self.hold("after", seconds, since=cutover["returned"])

        figures["rollback"] = rollback = self.activate(1, timeout)
        self.traffic.enter("rolled back")
        console.print(f"rollback: {rollback['ms']} ms, {len(rollback['refusals'])} refusal(s) first")
        figures["sizes_before_drop"] = self.sizes()
        sent = time.perf_counter()
        self.admin.delete(f"{self.base}/{number}").raise_for_status()
        returned = time.perf_counter()
        figures["drop"] = {"ms": round(1000 * (returned - sent), 1), "sent": sent, "returned": returned}
        figures["sizes_after_drop"] = {**self.sizes(), "version_table_left": self.database.table_exists(number)}
        console.print(f"drop: {figures['drop']['ms']} ms")
        self.hold("rolled back", seconds, since=rollback["returned"])
        self.traffic.stop()
        figures["settled"] = self.settle(timeout)
        return figures

    def settle(self, timeout: float) -> dict[str, Any]:
        """With the traffic stopped: wait for the worker to finish the uploads, then whether every chunk has a
        version 1 vector and how the uploads ended."""
        deadline = time.perf_counter() + timeout
        while True:
            statuses = self.database.upload_statuses()
            v1 = self.versions()[1]
            done = not set(statuses) - {"ready", "failed"} and v1["vectors"] == v1["chunks"]
            if done or time.perf_counter() > deadline:
                break
            time.sleep(0.5)
        return {"uploads": statuses, "v1_vectors": v1["vectors"], "chunks": v1["chunks"], "v1_status": v1["status"]}


# Figures from the recorded requests.


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def phase_figures(traffic: Traffic) -> dict[str, Any]:
    bounds = dict(zip([name for name, _ in traffic.starts], traffic.starts[1:], strict=False))
    figures = {}
    for phase in PHASES:
        seconds = bounds[phase][1] - dict(traffic.starts)[phase] if phase in bounds else 0.0
        mine = [s for s in traffic.searches if s.phase == phase]
        ok = [s for s in mine if s.status == "200"]
        ms = [s.ms for s in ok]
        uploads = [u for u in traffic.posted if u.phase == phase]
        figures[phase] = {
            "seconds": round(seconds, 2),
            "searches": len(mine),
            "searches_per_s": round(len(mine) / seconds, 2) if seconds else None,
            "errors": len(mine) - len(ok),
            "errors_by_status": dict(Counter(s.status for s in mine if s.status != "200")),
            "empty_results": sum(s.results == 0 for s in ok),
            "p50_ms": percentile(ms, 50),
            "p95_ms": percentile(ms, 95),
            "max_ms": round(max(ms), 1) if ms else None,
            "embedding_versions": {str(v): n for v, n in sorted(Counter(s.version for s in ok).items())},
            "uploads": len(uploads),
            "upload_statuses": dict(Counter(u.status for u in uploads)),
            "upload_p50_ms": percentile([u.ms for u in uploads], 50),
        }
    return figures


def propagation(traffic: Traffic, event: dict[str, Any], version: int, until: float) -> dict[str, Any]:
    """After an activation: how long from its return until each client got an answer from VERSION (0 when one came
    before the return), and answers from another version to requests sent after the return, before UNTIL."""
    delays = []
    for client in range(traffic.clients):
        seen = [s.returned for s in traffic.searches
                if s.client == client and s.version == version and s.returned >= event["sent"]]  # fmt: skip
        delays.append(round(max(0.0, 1000 * (min(seen) - event["returned"])), 1) if seen else None)
    stale = [s for s in traffic.searches
             if s.status == "200" and s.version != version and event["returned"] < s.sent < until]  # fmt: skip
    return {
        "all_clients_ms": None if None in delays else max(d for d in delays if d is not None),
        "per_client_ms": delays,
        "stale_answers": len(stale),
        "stale_versions": dict(Counter(str(s.version) for s in stale)),
    }


def in_flight(traffic: Traffic, event: dict[str, Any]) -> dict[str, Any]:
    """The searches in flight while the request of EVENT (an activation, the drop) ran."""
    overlapping = [s for s in traffic.searches if s.sent < event["returned"] and s.returned > event["sent"]]
    return {"searches": len(overlapping), "errors": sum(s.status != "200" for s in overlapping),
            "max_ms": round(max(s.ms for s in overlapping), 1) if overlapping else None}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2,000 chunks, phases of 10 s")
    parser.add_argument("--chunks", type=int, help="chunks in the collection (default 10,000; --quick 2,000)")
    parser.add_argument("--seconds", type=float, help="length of before, after, rolled back (default 60; --quick 10)")
    parser.add_argument("--v1", type=version_spec, default="hashing:256",
                        help="version 1, PROVIDER[:DIMENSIONS]; computed here (default hashing:256)")  # fmt: skip
    parser.add_argument(
        "--v2",
        type=version_spec,
        default="hashing:384",
        help="version 2, PROVIDER[:DIMENSIONS]; backfilled by the worker (default hashing:384)",
    )
    parser.add_argument("--clients", type=int, default=4, help="searching clients (default 4)")
    parser.add_argument("--upload-every", type=float, default=1.0, help="seconds between uploads (default 1)")
    parser.add_argument("--upload-documents", type=int, default=2, help="documents per upload (default 2)")
    parser.add_argument("--timeout", type=float, default=900, help="most seconds to wait for a backfill")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nfcorpus", type=Path, default=REPO_ROOT.parent / "shared/data/nfcorpus/corpus.jsonl")
    parser.add_argument("--squad", type=Path, default=REPO_ROOT.parent / "shared/data/squad/dev-v2.0.json")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "embedding_swap.json")
    args = parser.parse_args()
    chunks = args.chunks or (2_000 if args.quick else 10_000)
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    console.print(f"version 1: {described(args.v1)} (vectors computed here); "
                  f"version 2: {described(args.v2)} (backfilled by the worker)")  # fmt: skip

    with console.status("drawing the corpus and the queries"):
        generator = Generator(read_sources(args.nfcorpus, args.squad), args.seed)
        corpus = generator.corpus(chunks, CHUNKS_PER_DOCUMENT, WORDS)
        uploads = generator.corpus(3 * 2_000, 3, WORDS).documents  # 2,000 documents of 3 chunks, not loaded
        queries = generator.queries(corpus, 500, 3, 8)
        queries += generator.questions(corpus, 500, read_question_shapes(args.squad), 10, 20)
        random.Random(args.seed).shuffle(queries)

    with scratch_database("memora_swap") as db:
        facts: dict[str, Any] = {**machine(), **code_version(), **server_facts(db.url), "server": db.server}
        with memora_serve(db.url) as url, progress() as bar, httpx.Client(base_url=url, timeout=300) as admin:
            load_seconds = load(url, corpus.documents, args.v1, db.settings, bar)
            console.print(f"stored {chunks:,} chunks in {load_seconds:.1f} s")
            traffic = Traffic(url, queries, uploads, args.clients, args.upload_every, args.upload_documents)
            swap = Swap(admin, traffic, Database(db.url, db.settings.db_schema), bar)
            figures = swap.run(args.v2, seconds, args.timeout)

    phases = phase_figures(traffic)
    figures["cutover"] |= propagation(traffic, figures["cutover"], figures["backfill"]["version"],
                                      figures["rollback"]["sent"])  # fmt: skip
    figures["rollback"] |= propagation(traffic, figures["rollback"], 1, float("inf"))
    for event in ("cutover", "rollback", "drop"):
        figures[event]["in_flight"] = in_flight(traffic, figures[event])
        for key in ("sent", "returned"):
            figures[event].pop(key)

    print_facts("machine", facts)
    print_table(
        f"embedding swap: {chunks:,} chunks, {args.clients} clients, v1 {described(args.v1)} -> v2 "
        f"{described(args.v2)}",
        ["phase", "seconds", "searches", "per s", "errors", "empty", "p50 ms", "p95 ms", "max ms", "versions",
         "uploads"],
        [[name, p["seconds"], p["searches"], p["searches_per_s"], p["errors"], p["empty_results"], p["p50_ms"],
          p["p95_ms"], p["max_ms"], p["embedding_versions"], p["upload_statuses"]] for name, p in phases.items()],
    )  # fmt: skip
    backfill, drop = figures["backfill"], figures["drop"]
    print_table(
        "events",
        ["event", "request ms", "all clients see it (ms)", "stale answers", "409s first", "searches in flight",
         "their max ms"],
        [[name, e["ms"], e.get("all_clients_ms"), e.get("stale_answers"), len(e.get("refusals", [])),
          e["in_flight"]["searches"], e["in_flight"]["max_ms"]]
         for name, e in (("cutover (activate 2)", figures["cutover"]), ("rollback (activate 1)", figures["rollback"]),
                         ("drop (DELETE 2)", drop))],
    )  # fmt: skip
    console.print(f"backfill: {backfill['vectors']:,} vectors in {backfill['seconds']} s, "
                  f"{backfill['vectors_per_s']} vectors/s; create request {figures['create_ms']} ms")  # fmt: skip
    print_table("disk (bytes)", ["when", "v1", "v2", "partition"], [
        [when, figures[key]["versions"].get("1"), figures[key]["versions"].get("2"), figures[key]["partition_bytes"]]
        for when, key in (("before", "sizes_before"), ("v2 ready", "sizes_ready"),
                          ("before drop", "sizes_before_drop"), ("after drop", "sizes_after_drop"))
    ])  # fmt: skip
    console.print(f"after the traffic: {figures['settled']}")
    payload = {
        "benchmark": "embedding_swap",
        "parameters": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "chunks": chunks,
            "seconds": seconds,
        },
        "machine": facts,
        "data": {
            "chunks": chunks,
            "documents": len(corpus.documents),
            "words_per_chunk": WORDS,
            "queries": len(queries),
            "load_seconds": round(load_seconds, 1),
        },
        "phases": phases,
        **figures,
    }
    write_json(args.out, payload)


if __name__ == "__main__":
    main()
