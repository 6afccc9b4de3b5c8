"""Does reranking the fused candidates pay? nDCG@10 with and without it, and the milliseconds it adds.

Works offline on the candidates benchmarks/fusion_study.py dumped to benchmarks/.cache/ (run that first for a
dataset): fuses each judged query's BM25 and vector candidates as search does by default (convex, min-max, 1 : 1,
40 a side), ranks documents by their first chunk (as `memora eval` does), sends the best TOP_N documents' text
through app/rerank/service.py to the reranker, and scores both orders.

    .venv/bin/python benchmarks/rerank.py [--dataset nfcorpus|squad] [--top-n 50] [--base-url URL --model NAME]

With --base-url, the reranker is a real server's /v1/rerank (vLLM `--task score`, Jina, Cohere-compatible,
LiteLLM), key from MEMORA_OPENAI_API_KEY or OPENAI_API_KEY. Without it, a stand-in server on 127.0.0.1 scores by
query-word overlap: that measures the path (HTTP, JSON, reordering) and its added latency, not a model's quality;
no cross-encoder ships its weights on PyPI, and nothing may be downloaded at run time (docs/rerank.md).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common import REPO_ROOT, code_version, console, machine, print_facts, print_table, write_json
from fusion_study import convex, min_max
from pydantic import SecretStr
from search_quality import DEFAULT_CORPUS, load_nfcorpus, load_squad

from app.config import Settings
from app.eval.metrics import ndcg_at, percentile
from app.rerank.llm import OpenAICompatibleReranker
from app.rerank.service import rerank

CACHE = REPO_ROOT / "benchmarks" / ".cache"
CANDIDATES = 40  # search's default for k 10: 4 x k a side
DOCUMENT_CHARS = 2000  # a cross-encoder reads 512 tokens at most; more text only costs transfer
STAND_IN = "stand-in (query-word overlap, loopback)"


@contextmanager
def stand_in_server() -> Iterator[str]:
    """A /v1/rerank on 127.0.0.1 that scores a document by how many of the query's words it holds."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            words = set(re.findall(r"\w+", body["query"].lower()))
            results = [
                {"index": i, "relevance_score": len(words & set(re.findall(r"\w+", doc.lower())))}
                for i, doc in enumerate(body["documents"])
            ]
            payload = json.dumps({"results": results}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DEFAULT_CORPUS), default="nfcorpus")
    parser.add_argument("--corpus", type=Path, help="nfcorpus: a BEIR directory; squad: the SQuAD 2.0 JSON file")
    parser.add_argument("--top-n", type=int, nargs="+", default=[10, 20, 50], help="documents the reranker scores")
    parser.add_argument("--base-url", help="an OpenAI-compatible server with /v1/rerank (default: the stand-in)")
    parser.add_argument("--model", default="stand-in", help="the rerank model, as the server names it")
    parser.add_argument("--limit-queries", type=int, help="first N judged queries only")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    cache = CACHE / f"fusion-{args.dataset}-200.json.gz"
    if not cache.exists():
        parser.error(f"{cache}: not found; run benchmarks/fusion_study.py --dataset {args.dataset} first")
    corpus = args.corpus or DEFAULT_CORPUS[args.dataset]
    started = machine()  # the load before the timing; write_json adds the load at the end
    with console.status(f"reading {cache.name} and {corpus}"):
        data = json.loads(gzip.decompress(cache.read_bytes()))
        dataset = load_nfcorpus(corpus) if args.dataset == "nfcorpus" else load_squad(corpus)
    texts = {d.external_id: f"{d.title or ''}\n{d.content}"[:DOCUMENT_CHARS] for d in dataset.documents}
    queries = data["queries"][: args.limit_queries]
    fuse = convex(min_max, 0.5)
    rankings = []
    for query in queries:
        lexical = [(int(c), float(s)) for c, s in query["text"][:CANDIDATES]]
        semantic = [(int(c), float(s)) for c, s in query["vector"][:CANDIDATES]]
        scores = fuse(lexical, semantic)
        chunks = sorted(scores, key=lambda c: (-scores[c], c))
        rankings.append(list(dict.fromkeys(data["documents"][str(c)] for c in chunks)))
    fused = sum(ndcg_at(r, q["judgments"], 10) for r, q in zip(rankings, queries, strict=True)) / len(queries)

    rows: list[dict[str, Any]] = [{"method": "hybrid (convex, 40 a side), no rerank", "top_n": None,
                                   "ndcg@10": fused, "p50_ms": 0.0, "p95_ms": 0.0}]  # fmt: skip
    server = args.base_url
    with nullcontext(server) if server else stand_in_server() as base_url:
        key = os.environ.get("MEMORA_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
        settings = Settings(openai_base_url=base_url, openai_api_key=SecretStr(key), openai_max_retries=0)
        with closing(OpenAICompatibleReranker(settings, args.model)) as reranker:
            reranker.score("warm up", ["the connection"])
            for top_n in args.top_n:
                total, took = 0.0, []
                for ranking, query in zip(rankings, queries, strict=True):
                    text = dataset.queries[query["id"]]
                    began = time.perf_counter()
                    outcome = rerank(reranker, text, ranking, top_n, lambda doc: texts[doc])
                    took.append((time.perf_counter() - began) * 1000)
                    total += ndcg_at([hit.hit for hit in outcome.hits], query["judgments"], 10)
                label = f"+ rerank top {top_n}, {args.model if server else STAND_IN}"
                rows.append({"method": label, "top_n": top_n, "ndcg@10": total / len(queries),
                             "p50_ms": round(percentile(took, 50), 2),
                             "p95_ms": round(percentile(took, 95), 2)})  # fmt: skip
    for row in rows[1:]:
        row["gain"] = row["ndcg@10"] - fused
        row["gain_per_ms"] = row["gain"] / row["p50_ms"] if row["p50_ms"] else None
    facts = {**started, **code_version(), "dataset": args.dataset, "judged queries": len(queries),
             "reranker": server or STAND_IN}  # fmt: skip
    print_facts("Machine and data", facts)
    print_table(
        f"Reranking on {args.dataset} ({len(queries)} queries)",
        ["method", "nDCG@10", "gain", "added p50 ms", "added p95 ms", "gain per ms"],
        [[row["method"], f"{row['ndcg@10']:.4f}", f"{row.get('gain', 0):+.4f}", row["p50_ms"], row["p95_ms"],
          f"{row['gain_per_ms']:+.6f}" if row.get("gain_per_ms") is not None else None] for row in rows],
    )  # fmt: skip
    parameters = {"cache": cache.name, "corpus": str(corpus), "candidates": CANDIDATES, "fusion": "convex min-max 0.5",
                  "top_n": args.top_n, "document_chars": DOCUMENT_CHARS, "model": args.model,
                  "base_url": args.base_url, "limit_queries": args.limit_queries}  # fmt: skip
    # The candidates are those of the run that dumped them (benchmarks/fusion_study.py): its commit and machine.
    payload = {"benchmark": "rerank", "machine": facts, "parameters": parameters, "dump": data.get("provenance")}
    write_json(args.json, {**payload, "rows": rows})


if __name__ == "__main__":
    main()
