"""What benchmarks/search_speed.py measures and how it times it: the query sets, the cases (a statement per way
of calling a search function, Memora's and the posting-table recipe's), and one pass of every case for every query
in a shuffled order per query."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from peer_recipes import BM25, RRF, methods
from psycopg import sql

COLLECTION = "bench-search"
PEERS = "bench_search"  # the peers' tables: peers.bench_search_posting, ...
# Each query set: its text and its vector, as parameters of the statements.
QUERY_SETS = {"keywords": ("text", "vector"), "questions": ("question", "question_vector"),
              "passages": ("passage_text", "passage")}  # fmt: skip
BUCKETS = 10
FILTER = {"bucket": 3}  # keeps 1 document in BUCKETS
EF_SEARCH = (40, 64, 100, 200)  # 40 is pgvector's default; search_vector without ef_search uses 64


@dataclass(frozen=True)
class Case:
    """One way of calling a search function, timed for every query."""

    name: str
    statement: str | sql.Composed
    truth: str | None = None  # the case whose rows are the exact answer (for recall)
    connection: str = "memora"  # cases of one connection share its settings
    renames: dict[str, str] = field(default_factory=dict)  # the statement's parameter: the query's input it takes


def cases(text_sets: list[str]) -> list[Case]:
    """Keyword queries (3-8 words) go to every function; their vectors are the model's embeddings of those words.
    Questions and passages go to vector search, and to text and hybrid search when TEXT_SETS names them."""

    def call(function: str, arguments: str, extra: str = "") -> str:
        return f"SELECT * FROM memora.{function}(%(collection)s, {arguments}, %(k)s{extra})"

    text, filtered = "%(text)s", ", %(filter)s"
    found = []
    for vector, suffix in (("%(vector)s", ""), ("%(passage)s", " (passages)")):
        found += [
            Case(f"exact{suffix}", call("search_vector", vector, ", exact => true")),
            Case(f"vector{suffix}", call("search_vector", vector), truth=f"exact{suffix}"),
        ]
        found += [
            Case(f"vector ef={ef}{suffix}", call("search_vector", vector, f", ef_search => {ef}"), f"exact{suffix}")
            for ef in EF_SEARCH
        ]
    both = "%(text)s, %(vector)s"
    found += [
        Case("exact (questions)", call("search_vector", "%(question_vector)s", ", exact => true")),
        Case("vector (questions)", call("search_vector", "%(question_vector)s"), truth="exact (questions)"),
    ]
    for query_set in text_sets:
        suffix = "" if query_set == "keywords" else f" ({query_set})"
        words, vector = (f"%({name})s" for name in QUERY_SETS[query_set])
        found += [Case(f"text{suffix}", call("search_text", words)),
                  Case(f"hybrid{suffix}", call("search_hybrid", f"{words}, {vector}"))]  # fmt: skip
    found += [
        Case("filtered exact", call("search_vector", "%(vector)s", filtered + ", exact => true")),
        Case("filtered vector", call("search_vector", "%(vector)s", filtered), truth="filtered exact"),
        Case("filtered text", call("search_text", text, filtered)),
        Case("filtered hybrid", call("search_hybrid", both, filtered)),
    ]
    return found


def peer_cases(collection_id: int, text_sets: list[str]) -> tuple[list[Case], dict[str, tuple[str, ...]]]:
    """The posting-table BM25 and its RRF with HNSW for every query set of TEXT_SETS, as peer_recipes writes them,
    each on a connection of its own with its settings; and those settings by connection."""
    recipes = {m.name: m for m in methods(PEERS, collection_id) if m.name in (BM25, RRF)}
    assert all(isinstance(recipe.statement, sql.Composed) for recipe in recipes.values())
    found = []
    for query_set in text_sets:
        suffix = "" if query_set == "keywords" else f" ({query_set})"
        words, vector = QUERY_SETS[query_set]
        renames = {"query": words, "embedding": vector}
        found += [Case(name + suffix, recipe.statement, connection=name, renames=renames)  # type: ignore[arg-type]
                  for name, recipe in recipes.items()]  # fmt: skip
    return found, {name: recipe.setup for name, recipe in recipes.items()}


# -- the measurement -------------------------------------------------------------------------------------------


def back_to_back(all_cases: list[Case]) -> list[Case]:
    """Default vector search again, each query after the last with nothing in between, as ANN benchmarks time it
    and as the exact scans are timed here (in the shuffled run, text and hybrid searches come between)."""
    return [
        Case(name.replace("vector", "vector, back to back"), case.statement, case.truth)
        for case in all_cases
        if (name := case.name) in ("vector", "vector (passages)")
    ]


def backend_cpu(conn: psycopg.Connection[Any]) -> Callable[[], float] | None:
    """Seconds of CPU the connection's server process has used so far, when it runs on this machine: a figure
    that other work on the machine moves much less than latency. Parallel workers' CPU is not in it."""
    path = Path(f"/proc/{conn.info.backend_pid}/schedstat")  # nanoseconds on a CPU, then waiting, then slices
    local = conn.info.host in ("127.0.0.1", "localhost", "::1") or conn.info.host.startswith("/")
    if not local or not path.exists():
        return None
    return lambda: int(path.read_text().split()[0]) / 1e9


@dataclass
class Inputs:
    """The queries of one pass: one dict of statement parameters per query, and the connections by name."""

    params: list[dict[str, Any]]
    connections: dict[str, psycopg.Connection[Any]]

    def part(self, start: int, end: int | None = None) -> Inputs:
        return Inputs(self.params[start:end], self.connections)


def run(inputs: Inputs, all_cases: list[Case], seed: int, bar: Any, label: str) -> dict[str, dict[str, list[Any]]]:
    """Every case for every query, in a shuffled order per query: latencies (ms), server CPU (ms), chunk ids and
    row counts."""
    rng = np.random.default_rng(seed)
    cpus = {name: backend_cpu(conn) for name, conn in inputs.connections.items()}
    found: dict[str, dict[str, list[Any]]] = {
        c.name: {"ms": [], "cpu_ms": [], "ids": [], "rows": []} for c in all_cases
    }
    task = bar.add_task(label, total=len(inputs.params))
    for query in inputs.params:
        for index in rng.permutation(len(all_cases)):
            case = all_cases[index]
            conn, cpu = inputs.connections[case.connection], cpus[case.connection]
            params = query | {name: query[source] for name, source in case.renames.items()}
            before = cpu() if cpu else 0.0
            start = time.perf_counter()
            rows = conn.execute(case.statement, params, prepare=True).fetchall()
            found[case.name]["ms"].append(1000 * (time.perf_counter() - start))
            if cpu:
                found[case.name]["cpu_ms"].append(1000 * (cpu() - before))
            found[case.name]["ids"].append([row[0] for row in rows])
            found[case.name]["rows"].append(len(rows))
        bar.advance(task)
    bar.remove_task(task)
    return found
