"""End-to-end ingestion with the local model: upsert a BEIR corpus, then run one worker until the queue is empty.

The worker is the real one (app/ingest/worker.py) with the bundled all-MiniLM-L6-v2 int8 ONNX model; the embedder
it gets from the registry is wrapped to time every embed() call, so the figures say which share of the worker's
wall time the model takes. The model is loaded (and run once) before the worker starts, as a long-running worker
process would have done.

    .venv/bin/python benchmarks/ingest_e2e.py [--corpus PATH] [--limit N] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
    Timings,
    code_version,
    console,
    machine,
    patched,
    print_facts,
    print_table,
    progress,
    scratch_database,
    server_facts,
    write_json,
)
from rich.progress import Progress, TaskID
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.collections.schemas import CollectionCreate
from app.config import Settings
from app.db.engine import make_engine
from app.db.models import Chunk, Document, Embedding
from app.embeddings import local, registry
from app.embeddings.base import Embedder, Vectors
from app.ingest import chunk_repository, pipeline, repository, service
from app.ingest import worker as worker_module
from app.ingest.files import UPSERT_BATCH
from app.ingest.parsing import parse_file
from app.ingest.service import DocumentInput
from app.ingest.worker import Worker

DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "data" / "nfcorpus" / "corpus.jsonl"
MODEL, DIMENSIONS = "all-MiniLM-L6-v2", 384
EMBED = "embed() (the model)"
WRITE = "write (one transaction per batch: locks, pipeline.write_many, finish)"


class TimedEmbedder:
    """An embedder that adds the wall time of each embed() call to TIMINGS."""

    def __init__(self, inner: Embedder, timings: Timings) -> None:
        self.inner = inner
        self.timings = timings
        self.provider, self.model, self.dimensions = inner.provider, inner.model, inner.dimensions
        self.max_input_tokens, self.tokenizer = inner.max_input_tokens, inner.tokenizer
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        with self.timings.step(EMBED):
            vectors = self.inner.embed(texts)
        self.texts += len(texts)
        return vectors


class TimedWorker(Worker):
    """The worker, with its write step (one transaction per claimed batch) timed and counted on a progress bar."""

    def __init__(self, *args: Any, timings: Timings, bar: Progress, task: TaskID, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timings, self.bar, self.task = timings, bar, task

    def _write(self, *args: Any, **kwargs: Any) -> None:
        before = self.stats.documents + self.stats.failed + self.stats.superseded
        with self.timings.step(WRITE):
            super()._write(*args, **kwargs)
        self.bar.advance(self.task, self.stats.documents + self.stats.failed + self.stats.superseded - before)


def load_corpus(path: Path, limit: int | None) -> list[DocumentInput]:
    parsed = parse_file(path.name, path.read_bytes())[:limit]
    return [DocumentInput(d.content, d.external_id, d.title, d.content_type, d.metadata, path.name) for d in parsed]


def upsert(engine: Any, documents: list[DocumentInput], bar: Progress) -> dict[str, Any]:
    """Create the collection and upsert the documents UPSERT_BATCH at a time, as `memora ingest` does; the
    collection's chunking settings."""
    with Session(engine) as db, db.begin():
        collection = collections.create(
            db, CollectionCreate(name="nfcorpus", embedding_provider="local", embedding_model=MODEL, dimensions=384)
        )
        chunking = dict(collection.chunking)
    task = bar.add_task("upsert documents", total=len(documents))
    for start in range(0, len(documents), UPSERT_BATCH):
        batch = documents[start : start + UPSERT_BATCH]
        with Session(engine) as db, db.begin():
            service.upsert(db, collections.get(db, "nfcorpus"), batch)
        bar.advance(task, len(batch))
    bar.remove_task(task)
    return chunking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="a BEIR corpus.jsonl")
    parser.add_argument("--limit", type=int, help="first N documents only (default: all)")
    parser.add_argument("--batch-size", type=int, help="documents a worker claims at once (MEMORA_WORKER_BATCH_SIZE)")
    parser.add_argument("--embed-batch-size", type=int, help="texts per embed() call (MEMORA_EMBED_BATCH_SIZE)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"{args.corpus}: no such file (the nfcorpus data lives in ../shared, outside the repository)")

    started = time.perf_counter()
    with console.status(f"parsing {args.corpus}"):
        parse_start = time.perf_counter()
        documents = load_corpus(args.corpus, args.limit)
        parse_seconds = time.perf_counter() - parse_start
    overrides = {"worker_batch_size": args.batch_size, "embed_batch_size": args.embed_batch_size}
    with scratch_database("memora_bench_ingest") as db:
        settings = Settings(database_url=db.url, **{k: v for k, v in overrides.items() if v is not None})
        facts = {**machine(), **code_version(), **server_facts(db.url), "server": db.server}
        worker_settings: dict[str, Any] = {
            "worker_batch_size": settings.worker_batch_size,
            "embed_batch_size": settings.embed_batch_size,
            "onnxruntime_intra_op_threads": os.cpu_count() or 1,
            "onnxruntime_run_size": local._RUN_SIZE,
        }
        engine = make_engine(db.settings, "bench")
        timings = Timings()
        try:
            with progress() as bar:
                upsert_start = time.perf_counter()
                worker_settings["chunking (collection default)"] = upsert(engine, documents, bar)
                upsert_seconds = time.perf_counter() - upsert_start
                print_facts("Machine, server and worker settings", facts | worker_settings)

                with console.status("loading the local model"):
                    load_start = time.perf_counter()
                    inner = registry.get_embedder("local", MODEL, DIMENSIONS, settings)
                    inner.embed(["warm up"])
                    load_seconds = time.perf_counter() - load_start
                embedder = TimedEmbedder(inner, timings)

                def timed_embedder(provider: str, model: str, dimensions: int, _: Settings) -> Embedder:
                    assert (provider, model, dimensions) == ("local", MODEL, DIMENSIONS)
                    return embedder

                task = bar.add_task("worker: documents written", total=len(documents))
                worker = TimedWorker(settings, engine, timings=timings, bar=bar, task=task)
                with (
                    patched(worker_module, "get_embedder", timed_embedder),
                    patched(repository, "claim", timings.wrap("claim", repository.claim)),
                    patched(pipeline, "plan", timings.wrap("plan (chunking, hashing)", pipeline.plan)),
                    patched(
                        chunk_repository, "known_vectors", timings.wrap("known_vectors", chunk_repository.known_vectors)
                    ),
                ):
                    worker_start = time.perf_counter()
                    stats = worker.run(threading.Event(), until_empty=True)
                    worker_seconds = time.perf_counter() - worker_start
                bar.remove_task(task)

            with Session(engine) as session:
                statuses = dict(session.execute(select(Document.status, func.count()).group_by(Document.status)).all())
                chunks = session.scalar(select(func.count()).select_from(Chunk)) or 0
                vectors = session.scalar(select(func.count()).select_from(Embedding)) or 0
        finally:
            engine.dispose()

    embed_seconds = timings.seconds[EMBED]
    steps = sorted(timings.seconds.items(), key=lambda item: -item[1])
    steps.append(("rest (run loop, LISTEN, progress)", worker_seconds - sum(timings.seconds.values())))
    figures = {
        "documents": len(documents),
        "documents_ready": statuses.get("ready", 0),
        "documents_failed": statuses.get("failed", 0),
        "chunks": chunks,
        "vectors": vectors,
        "texts_embedded": stats.texts_embedded,
        "parse_seconds": parse_seconds,
        "upsert_seconds": upsert_seconds,
        "upsert_documents_per_second": len(documents) / upsert_seconds,
        "model_load_seconds": load_seconds,
        "worker_seconds": worker_seconds,
        "worker_documents_per_second": len(documents) / worker_seconds,
        "worker_chunks_per_second": chunks / worker_seconds,
        "embed_seconds": embed_seconds,
        "model_share_of_worker": embed_seconds / worker_seconds,
        "texts_per_second_in_model": stats.texts_embedded / embed_seconds if embed_seconds else None,
        "end_to_end_seconds": parse_seconds + upsert_seconds + load_seconds + worker_seconds,
    }
    print_table(
        f"Ingest of {args.corpus}",
        ["figure", "value"],
        [[key.replace("_", " "), value] for key, value in figures.items()],
    )
    print_table(
        f"Worker time by step ({worker_seconds:.1f} s)",
        ["step", "seconds", "share of worker"],
        [[name, value, f"{100 * value / worker_seconds:.1f}%"] for name, value in steps],
    )
    share = figures["model_share_of_worker"]
    verdict = "met" if share >= 0.8 else "NOT met"
    console.print(f"target: model time >= 80% of the worker's wall time: {100 * share:.1f}%, {verdict}")
    assert figures["documents_ready"] == len(documents), statuses
    console.print(f"wall time {time.perf_counter() - started:.0f} s")
    write_json(
        args.json,
        {
            "benchmark": "ingest_e2e",
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": facts,
            "worker_settings": worker_settings,
            "figures": figures,
            "worker_steps": dict(steps),
        },
    )


if __name__ == "__main__":
    main()
