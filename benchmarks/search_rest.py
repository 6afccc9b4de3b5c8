"""REST latency of search for benchmarks/search_speed.py: `memora serve` on loopback, timed by an HTTP client."""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
from common import ScratchDatabase, memora_serve

from app.embeddings.local import LocalEmbedder

MODES = ("hybrid", "text")  # text: the same request without a query embedding, i.e. HTTP + JSON + SQL


def rest_latency(
    db: ScratchDatabase, collection: str, queries: list[str], k: int, seed: int, bar: Any
) -> dict[str, Any] | None:
    """POST /v1/collections/{name}/search for every query (hybrid, the query embedded by the server's local model,
    then text), one keep-alive connection; client-side latency. None when the app has no search route."""
    with memora_serve(db.url, "--no-worker") as url, httpx.Client(base_url=url, timeout=60) as client:
        path = f"/v1/collections/{collection}/search"
        if client.post(path, json={"query": "x", "k": k, "mode": "text"}).status_code == 404:
            return None
        # Warm-up: the server loads the model on its first query.
        for query in queries[:20]:
            for mode in MODES:
                client.post(path, json={"query": query, "k": k, "mode": mode}).raise_for_status()
        rng = np.random.default_rng(seed)
        ms: dict[str, list[float]] = {mode: [] for mode in MODES}
        took: dict[str, list[float]] = {mode: [] for mode in MODES}
        task = bar.add_task("REST: POST .../search", total=len(queries))
        for query in queries:
            for index in rng.permutation(len(MODES)):
                mode = MODES[index]
                start = time.perf_counter()
                response = client.post(path, json={"query": query, "k": k, "mode": mode})
                ms[mode].append(1000 * (time.perf_counter() - start))
                response.raise_for_status()
                body = response.json()
                assert len(body["results"]) == k, (query, mode, len(body["results"]))
                took[mode].append(body["took_ms"])
            bar.advance(task)
        bar.remove_task(task)
    # The model's share: the same queries embedded here, one at a time, as the server does.
    embedder = LocalEmbedder()
    embedder.embed(queries[:5])
    embed_ms = []
    for query in queries:
        start = time.perf_counter()
        embedder.embed([query])
        embed_ms.append(1000 * (time.perf_counter() - start))
    result: dict[str, Any] = {"requests": len(queries), "endpoint": "POST /v1/collections/{name}/search"}
    for mode in MODES:
        prefix = "" if mode == "hybrid" else f"{mode}_"
        result |= {
            f"{prefix}p50_ms": float(np.percentile(ms[mode], 50)),
            f"{prefix}p95_ms": float(np.percentile(ms[mode], 95)),
            f"{prefix}mean_ms": float(np.mean(ms[mode])),
            f"{prefix}server_took_p50_ms": float(np.percentile(took[mode], 50)),
        }
    result["query_embedding_p50_ms"] = float(np.percentile(embed_ms, 50))
    result["query_embedding_p95_ms"] = float(np.percentile(embed_ms, 95))
    return result
