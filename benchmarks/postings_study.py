"""A study for issue 15: BM25 over postings kept by triggers against memora.search_text, on keyword queries and
10-20-word questions. The study's scorers are benchmarks/sql/postings_prototype.sql; the postings and their triggers
are the product's since migration 0008 (the study ran first with its own identical copy of them).

Loads NFCorpus into a scratch database the way `memora ingest` does (hashing provider: text is what counts here)
with the prototype applied first, the triggers writing the postings during the load; checks them against a
recount; checks that each prototype's top k is search_text's for every query; then times, over one connection,
every query in a shuffled order with the methods in a shuffled order per query: search_text (the product entry),
bm25_candidates (its core), (a) a GROUP BY over all the query's postings, (b) MaxScore over postings. Also the
storage per chunk and the chunk insert rate with and without the posting trigger, alternated in one run.

    .venv/bin/python benchmarks/postings_study.py [--documents N] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from common import (
    REPO_ROOT,
    code_version,
    console,
    machine,
    print_facts,
    print_table,
    scratch_database,
    server_facts,
    write_json,
)
from load import NFCORPUS, make_queries, read_jsonl
from psycopg import sql
from psycopg.types.json import Jsonb
from search_corpus import Corpus, Generator, read_sources
from search_quality import load_nfcorpus
from sqlalchemy.orm import Session
from write_variants import CHUNK_COLUMNS, CHUNK_TYPES, reserve_ids

from app.cli.documents import wait_for_worker
from app.collections import service as collections
from app.collections.schemas import CollectionCreate
from app.db.engine import make_engine
from app.ingest import service as ingest
from app.ingest.files import UPSERT_BATCH

SQUAD = REPO_ROOT.parent / "shared" / "data" / "squad" / "dev-v2.0.json"
PROTOTYPE = Path(__file__).resolve().parent / "sql" / "postings_prototype.sql"
COLLECTION = "nfcorpus"
SYNTHETIC = "synthetic"
METHODS = {
    "search_text": "SELECT chunk_id, text_score FROM memora.search_text(%(c)s, %(q)s, %(k)s)",
    "bm25_candidates": "SELECT chunk_id, score FROM memora.bm25_candidates(%(cid)s, %(q)s, %(k)s)",
    "postings (a) GROUP BY": "SELECT chunk_id, score FROM memora.bm25_postings(%(c)s, %(q)s, %(k)s)",
    "postings (b) MaxScore": "SELECT chunk_id, score FROM memora.bm25_postings_maxscore(%(c)s, %(q)s, %(k)s)",
    # A larger first pass: a higher bar for pass 2, at the price of more chunks scored in full.
    "postings (b) MaxScore, first pass 10,000": (
        "SELECT chunk_id, score FROM memora.bm25_postings_maxscore(%(c)s, %(q)s, %(k)s, 10000)"
    ),
}
TOLERANCE = 1e-9  # scores are sums of the same doubles in other orders


def compare(reference: list[tuple[int, float]], other: list[tuple[int, float]]) -> str:
    """'same' (ids in order, scores within TOLERANCE), 'tie order' (the same scores, ids differing only among
    equal scores), else 'different'."""
    if len(reference) == len(other) and all(
        a[0] == b[0] and abs(a[1] - b[1]) <= TOLERANCE * max(1.0, abs(a[1]))
        for a, b in zip(reference, other, strict=True)
    ):
        return "same"
    if len(reference) == len(other) and all(abs(a[1] - b[1]) <= 1e-7 for a, b in zip(reference, other, strict=True)):
        return "tie order"
    return "different"


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    return conn.execute(query, params).fetchone()[0]  # type: ignore[index]


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def apply_prototype(url: str) -> None:
    with psycopg.connect(url) as conn:
        # As the owner of Memora's objects, as migrations create them: foreign-key cascades delete chunks as the
        # chunk table's owner, whose trigger must then be able to delete postings.
        owner = scalar(conn, "SELECT value FROM memora.meta WHERE key = 'sql_role_owner'")
        if owner is not None:
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        conn.execute(PROTOTYPE.read_text())


def load(args: argparse.Namespace, url: str, settings: Any) -> tuple[int, dict[str, Any]]:
    dataset = load_nfcorpus(args.corpus)
    dataset.documents = dataset.documents[: args.documents]
    engine = make_engine(settings, "bench")
    with Session(engine) as db, db.begin():
        collections.create(db, CollectionCreate(name=COLLECTION, embedding_provider="hashing"))
    began = time.perf_counter()
    for start in range(0, len(dataset.documents), UPSERT_BATCH):
        with Session(engine) as db, db.begin():
            ingest.upsert(db, collections.get(db, COLLECTION), dataset.documents[start : start + UPSERT_BATCH])
    counts = wait_for_worker(settings, engine, COLLECTION)
    assert counts.get("ready", 0) == len(dataset.documents), counts
    seconds = {"ingest seconds (upsert and worker)": round(time.perf_counter() - began, 1)}
    engine.dispose()
    with psycopg.connect(url, autocommit=True) as conn:
        cid = scalar(conn, "SELECT id FROM memora.collection WHERE name = %s", (COLLECTION,))
        # The triggers' postings against a recount from the chunks, both ways.
        recount = """SELECT c.collection_id, u.lexeme, c.id, coalesce(cardinality(u.positions), 1)::smallint,
                            length(c.tsv) FROM memora.chunk c, unnest(c.tsv) u WHERE c.collection_id = %(c)s"""
        stored = "SELECT collection_id, lexeme, chunk_id, tf, len FROM memora.posting WHERE collection_id = %(c)s"
        missing_query = f"SELECT count(*) FROM ({recount} EXCEPT ALL {stored}) x"
        extra_query = f"SELECT count(*) FROM ({stored} EXCEPT ALL {recount}) x"
        missing = scalar(conn, missing_query, {"c": cid})
        extra = scalar(conn, extra_query, {"c": cid})
        # The update and delete triggers, in a transaction rolled back: edited texts, renumbered chunks, deletions.
        with conn.transaction(force_rollback=True):
            conn.execute(
                "UPDATE memora.chunk SET text = text || ' vitamin vitamin soy' "
                "WHERE collection_id = %s AND id %% 5 = 0",
                (cid,),
            )
            conn.execute(
                "UPDATE memora.chunk SET ordinal = ordinal + 1000 WHERE collection_id = %s AND id %% 3 = 0", (cid,)
            )
            conn.execute("DELETE FROM memora.chunk WHERE collection_id = %s AND id %% 7 = 0", (cid,))
            after_writes = scalar(conn, missing_query, {"c": cid}) + scalar(conn, extra_query, {"c": cid})
        conn.execute("VACUUM ANALYZE memora.chunk, memora.posting, memora.term_stats, memora.text_stats")
        facts = {
            "documents": len(dataset.documents),
            "chunks": scalar(conn, "SELECT count(*) FROM memora.chunk WHERE collection_id = %s", (cid,)),
            "postings": scalar(conn, "SELECT count(*) FROM memora.posting WHERE collection_id = %s", (cid,)),
            "postings missing after the load (recount minus stored)": missing,
            "postings extra after the load (stored minus recount)": extra,
            "postings differing from a recount after updates and deletes": after_writes,
            **seconds,
        }
    return cid, facts


def load_synthetic(url: str, corpus: Corpus, batch: int = 2000) -> tuple[int, dict[str, Any]]:
    """CORPUS's texts as documents and chunks of a new collection (binary COPY, BATCH chunks a statement, as the
    worker writes them), the prototype's triggers on; no vectors."""
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        cid, language = conn.execute(
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions) "
            "VALUES (%s, 'hashing', 'hashing', 256) RETURNING id, language::oid",
            (SYNTHETIC,),
        ).fetchone()  # type: ignore[misc]
        cursor = conn.cursor()
        with cursor.copy(
            "COPY memora.document (collection_id, id, external_id, title, content, content_hash, status) FROM STDIN"
        ) as copy:
            for number, chunks in enumerate(corpus.documents, start=1):
                content = "\n\n".join(chunks)
                copy.write_row((cid, number, f"doc-{number}", "", content, sha256(content.encode()).digest(), "ready"))
        rows = [(number, ordinal, text) for number, chunks in enumerate(corpus.documents, start=1)
                for ordinal, text in enumerate(chunks)]  # fmt: skip
        ids = reserve_ids(cursor, len(rows))
        statement = sql.SQL("COPY memora.chunk ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.SQL(", ").join(map(sql.Identifier, CHUNK_COLUMNS))
        )
        for start in range(0, len(rows), batch):
            with conn.transaction(), cursor.copy(statement) as copy:
                copy.set_types(CHUNK_TYPES)
                for chunk_id, (number, ordinal, text) in zip(ids[start:], rows[start : start + batch], strict=False):
                    copy.write_row(
                        (cid, chunk_id, number, ordinal, text, 0, len(text), len(text.split()),
                         sha256(text.encode()).digest(), "", language, Jsonb({}))
                    )  # fmt: skip
        seconds = round(time.perf_counter() - began, 1)
        conn.execute("VACUUM ANALYZE memora.chunk, memora.posting, memora.term_stats, memora.text_stats")
        facts = {
            "documents": len(corpus.documents),
            "chunks": scalar(conn, "SELECT count(*) FROM memora.chunk WHERE collection_id = %s", (cid,)),
            "postings": scalar(conn, "SELECT count(*) FROM memora.posting WHERE collection_id = %s", (cid,)),
            "COPY seconds (documents and chunks, triggers on)": seconds,
        }
    return cid, facts


def storage(url: str, chunks: int) -> dict[str, Any]:
    """Bytes per chunk of the postings (heap, B-tree) beside the chunk table's and the statistics'."""
    with psycopg.connect(url) as conn:

        def size(expression: str) -> int:
            return int(conn.execute(f"SELECT {expression}").fetchone()[0])  # type: ignore[index]

        rows = {
            "posting heap": size("pg_relation_size('memora.posting')"),
            "posting B-tree (pk_posting)": size("pg_relation_size('memora.pk_posting')"),
            "chunk heap + TOAST": size("pg_table_size('memora.chunk')"),
            "chunk indexes (GIN on tsv among them)": size("pg_indexes_size('memora.chunk')"),
            "chunk GIN on tsv": size("pg_relation_size('memora.ix_chunk_tsv')"),
            "term_stats + text_stats": size(
                "pg_total_relation_size('memora.term_stats') + pg_total_relation_size('memora.text_stats')"
            ),
        }
    return {name: {"bytes": value, "bytes_per_chunk": round(value / chunks, 1)} for name, value in rows.items()}


def check_and_time(
    url: str, name: str, cid: int, queries: list[tuple[str, str]], rounds: int, k: int
) -> dict[str, Any]:
    rng = random.Random(15)
    results: dict[str, Any] = {"exactness": {}, "latency": {}}
    timings: dict[str, dict[str, list[float]]] = {m: {"keywords": [], "questions": []} for m in METHODS}
    # Each method's time over search_text's for the same query in the same pass: steadier than percentiles when
    # other work shares the machine.
    per_query: dict[str, dict[str, list[float]]] = {m: {"keywords": [], "questions": []} for m in METHODS}
    with psycopg.connect(url, autocommit=True) as conn:
        lexemes = {
            q: conn.execute("SELECT cardinality(lexemes) FROM memora.postings_query(%s, %s)", (name, q)).fetchone()[0]  # type: ignore[index]
            for _, q in queries
        }
        # Exactness, which also warms the caches and the plans.
        verdicts: dict[str, dict[str, int]] = {m: {} for m in METHODS if m != "search_text"}
        examples: list[dict[str, Any]] = []
        for kind, q in queries:
            params = {"c": name, "cid": cid, "q": q, "k": k}
            reference = conn.execute(METHODS["search_text"], params).fetchall()
            for method in verdicts:
                other = conn.execute(METHODS[method], params).fetchall()
                verdict = compare(reference, other)
                verdicts[method][f"{kind}: {verdict}"] = verdicts[method].get(f"{kind}: {verdict}", 0) + 1
                if verdict != "same" and len(examples) < 5:
                    examples.append({"method": method, "verdict": verdict, "query": q, "search_text": reference,
                                     method: other})  # fmt: skip
        results["exactness"] = {"verdicts": verdicts, "examples": examples}
        for _ in range(rounds):
            order = list(queries)
            rng.shuffle(order)
            for kind, q in order:
                params = {"c": name, "cid": cid, "q": q, "k": k}
                methods = list(METHODS)
                rng.shuffle(methods)
                took = {}
                for method in methods:
                    start = time.perf_counter()
                    conn.execute(METHODS[method], params).fetchall()
                    took[method] = (time.perf_counter() - start) * 1000
                    timings[method][kind].append(took[method])
                for method in METHODS:
                    per_query[method][kind].append(took[method] / took["search_text"])
    for kind in ("keywords", "questions"):
        counts = [lexemes[q] for kd, q in queries if kd == kind]
        results["latency"][kind] = {
            "queries": len(counts),
            "lexemes in the collection per query (median, max)": [statistics.median(counts), max(counts)],
        }
        base = percentiles(timings["search_text"][kind])
        for method in METHODS:
            p50, p95 = percentiles(timings[method][kind])
            results["latency"][kind][method] = {
                "p50_ms": round(p50, 3),
                "p95_ms": round(p95, 3),
                "p50 / search_text p50": round(p50 / base[0], 3),
                "p95 / search_text p95": round(p95 / base[1], 3),
                "median of per-query ratios": round(statistics.median(per_query[method][kind]), 3),
            }
    return results


def plans(url: str, name: str, cid: int, query: str, k: int) -> dict[str, list[str]]:
    """The plans of every statement each method runs for QUERY (auto_explain, nested statements, with buffers),
    to see where the time goes; empty if the server will not load auto_explain."""
    found: dict[str, list[str]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        try:
            conn.execute("LOAD 'auto_explain'")
        except psycopg.Error as error:
            return {"auto_explain unavailable": [str(error)]}
        for setting, value in (("log_min_duration", "0"), ("log_nested_statements", "on"), ("log_analyze", "on"),
                               ("log_buffers", "on"), ("log_level", "notice")):  # fmt: skip
            conn.execute(sql.SQL("SET auto_explain.{} = {}").format(sql.SQL(setting), sql.Literal(value)))
        for method, statement in METHODS.items():
            conn.execute(statement, {"c": name, "cid": cid, "q": query, "k": k}).fetchall()
            notices.clear()
            conn.execute(statement, {"c": name, "cid": cid, "q": query, "k": k}).fetchall()
            found[method] = list(notices)
    return found


# How many postings a query must read, given its true k-th score (an oracle bar: what the best pruning could reach):
# every posting (GROUP BY); MaxScore's essential terms with the bound idf * (k1 + 1) (loose) and with each term's
# largest contribution (tight); the postings in blocks of chunk ids whose bound, the sum over the terms of the
# block's largest contribution, reaches the bar (block-max), with the (term, block) bounds it reads.
PRUNING = """
WITH t AS (SELECT * FROM unnest(%(lexemes)s::text[], %(idfs)s::float8[]) t (lexeme, idf)),
p AS (
    SELECT p.chunk_id / %(block)s AS block, t.lexeme, t.idf * (%(k1)s + 1) AS loose,
           t.idf * (%(k1)s + 1) * (1 - kv.v / (kv.v + p.tf)) AS impact
    FROM t JOIN memora.posting p ON p.collection_id = %(cid)s AND p.lexeme = t.lexeme
    CROSS JOIN LATERAL (SELECT %(k1)s * (1 - %(b)s + %(b)s * p.len / %(avglen)s)) kv (v)
),
terms AS (SELECT lexeme, count(*) AS df, max(loose) AS loose, max(impact) AS tight FROM p GROUP BY lexeme),
term_blocks AS (SELECT block, lexeme, count(*) AS n, max(impact) AS m FROM p GROUP BY block, lexeme),
blocks AS (SELECT block, sum(n) AS n, sum(m) AS bound FROM term_blocks GROUP BY block),
-- A term is non-essential when the bounds of the terms at or below its bound stay under the bar.
loose AS (SELECT lexeme, df, sum(loose) OVER (ORDER BY loose, lexeme) AS below FROM terms),
tight AS (SELECT df, sum(tight) OVER (ORDER BY tight, lexeme) AS below FROM terms)
SELECT (SELECT sum(df) FROM terms),
       (SELECT coalesce(sum(df), 0) FROM loose WHERE below >= %(bar)s),
       (SELECT coalesce(sum(df), 0) FROM tight WHERE below >= %(bar)s),
       (SELECT coalesce(sum(n), 0) FROM blocks WHERE bound >= %(bar)s),
       (SELECT count(*) FROM term_blocks),
       -- Both: the essential terms' postings (loose bounds) in the blocks whose bound reaches the bar.
       (SELECT coalesce(sum(tb.n), 0) FROM term_blocks tb JOIN blocks USING (block)
        WHERE blocks.bound >= %(bar)s AND tb.lexeme IN (SELECT lexeme FROM loose WHERE below >= %(bar)s))
"""


def pruning(url: str, name: str, cid: int, queries: list[tuple[str, str]], k: int, block: int) -> dict[str, Any]:
    """The share of a query's postings each pruning would read with the true k-th score as its bar (PRUNING)."""
    shares: dict[str, dict[str, list[float]]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for kind, q in queries:
            row = conn.execute("SELECT * FROM memora.postings_query(%s, %s)", (name, q)).fetchone()
            scores = [r[1] for r in conn.execute(METHODS["postings (a) GROUP BY"], {"c": name, "q": q, "k": k})]
            if row is None or len(scores) < k:
                continue
            _, k1, b, avglen, lexemes, idfs = row
            params = {"lexemes": lexemes, "idfs": idfs, "cid": cid, "k1": k1, "b": b, "avglen": avglen,
                      "block": block, "bar": scores[-1] - 1e-9}  # fmt: skip
            total, loose, tight, blocked, bounds, both = conn.execute(PRUNING, params).fetchone()  # type: ignore[misc]
            figures = shares.setdefault(kind, {"postings": [], "MaxScore, bound idf * (k1 + 1)": [],
                                               "MaxScore, each term's largest contribution": [],
                                               f"block-max, blocks of {block} chunk ids": [],
                                               "block bounds read / postings": [],
                                               "MaxScore (loose) and block-max": []})  # fmt: skip
            figures["postings"].append(float(total))
            figures["MaxScore, bound idf * (k1 + 1)"].append(float(loose) / float(total))
            figures["MaxScore, each term's largest contribution"].append(float(tight) / float(total))
            figures[f"block-max, blocks of {block} chunk ids"].append(float(blocked) / float(total))
            figures["block bounds read / postings"].append(float(bounds) / float(total))
            figures["MaxScore (loose) and block-max"].append(float(both) / float(total))
    return {
        kind: {name: {"median": round(statistics.median(v), 3), "p90": round(float(np.percentile(v, 90)), 3)}
               for name, v in figures.items()}
        for kind, figures in shares.items()
    }  # fmt: skip


def write_cost(url: str, source_id: int, rounds: int, batch: int) -> dict[str, Any]:
    """Chunks inserted per second into a new collection, copies of SOURCE_ID's, BATCH chunks a statement and a
    commit, with the posting insert trigger enabled and disabled in alternation."""
    rates: dict[str, list[float]] = {"with postings": [], "without postings": []}
    with psycopg.connect(url, autocommit=True) as conn:
        documents = [r[0] for r in conn.execute(
            "SELECT id FROM memora.document WHERE collection_id = %s ORDER BY id", (source_id,)
        )]  # fmt: skip
        for r in range(rounds):
            modes = ["with postings", "without postings"]
            if r % 2:
                modes.reverse()
            for mode in modes:
                action = "ENABLE" if mode == "with postings" else "DISABLE"
                conn.execute(f"ALTER TABLE memora.chunk {action} TRIGGER chunk_postings_insert")
                target = conn.execute(
                    "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions) "
                    "VALUES (%s, 'hashing', 'hashing', 256) RETURNING id",
                    (f"write-{r}-{action.lower()}",),
                ).fetchone()[0]  # type: ignore[index]
                conn.execute(
                    """INSERT INTO memora.document (collection_id, id, external_id, title, content, content_hash,
                                                    status)
                       SELECT %s, id, external_id, title, content, content_hash, 'ready'
                       FROM memora.document WHERE collection_id = %s""",
                    (target, source_id),
                )
                conn.execute("CHECKPOINT")
                inserted, spent = 0, 0.0
                for start in range(0, len(documents), batch):
                    ids = documents[start : start + batch]
                    began = time.perf_counter()
                    inserted += conn.execute(
                        """INSERT INTO memora.chunk (collection_id, document_id, ordinal, text, char_start, char_end,
                                                     token_count, content_hash, title, language, metadata)
                           SELECT %s, document_id, ordinal, text, char_start, char_end, token_count, content_hash,
                                  title, language, metadata
                           FROM memora.chunk WHERE collection_id = %s AND document_id = ANY (%s)""",
                        (target, source_id, ids),
                    ).rowcount
                    spent += time.perf_counter() - began
                rates[mode].append(inserted / spent)
                conn.execute("ALTER TABLE memora.chunk ENABLE TRIGGER chunk_postings_insert")
                conn.execute("DELETE FROM memora.collection WHERE id = %s", (target,))
    with_p, without = statistics.median(rates["with postings"]), statistics.median(rates["without postings"])
    return {
        "documents per statement": batch,
        "chunks/s per round": {m: [round(x) for x in v] for m, v in rates.items()},
        "chunks/s median": {"with postings": round(with_p), "without postings": round(without)},
        "with / without": round(with_p / without, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=NFCORPUS)
    parser.add_argument("--documents", type=int, default=None, help="the first N documents only")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over every query")
    parser.add_argument("--write-rounds", type=int, default=4)
    parser.add_argument("--write-batch", type=int, default=100, help="documents per insert statement")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--pruning", type=int, default=100, help="queries of each set for the pruning analysis")
    parser.add_argument("--block", type=int, default=128, help="chunk ids per block in the pruning analysis")
    parser.add_argument("--synthetic", type=int, default=0, help="ROWS chunks of search_speed.py's corpus instead")
    parser.add_argument("--queries", type=int, default=300, help="queries of each length (--synthetic only)")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "postings_study.json")
    args = parser.parse_args()

    payload: dict[str, Any] = {"machine": machine(), "code": code_version()}
    payload["settings"] = {k: str(v) for k, v in vars(args).items()}
    with scratch_database("postings") as db:
        payload["server"] = server_facts(db.url)
        if args.synthetic:
            # The corpus of benchmarks/search_speed.py (bags of real words by topic), and its queries at two lengths.
            generator = Generator(read_sources(args.corpus / "corpus.jsonl", SQUAD), seed=1)
            corpus = generator.corpus(args.synthetic, 20, 60)
            queries = [("keywords", q) for q in generator.queries(corpus, args.queries, 3, 8)]
            queries += [("questions", q) for q in generator.queries(corpus, args.queries, 10, 20)]
            apply_prototype(db.url)
            name, (cid, payload["load"]) = SYNTHETIC, load_synthetic(db.url, corpus)
        else:
            rng = random.Random(15)
            corpus_rows = read_jsonl(args.corpus / "corpus.jsonl")
            made = make_queries(corpus_rows, read_jsonl(args.corpus / "queries.jsonl"), rng)
            queries = [("questions" if q.endswith("?") else "keywords", q) for q in made]
            apply_prototype(db.url)
            name, (cid, payload["load"]) = COLLECTION, load(args, db.url, db.settings)
        print_facts("load", payload["load"])
        payload["storage"] = storage(db.url, payload["load"]["chunks"])
        print_table("storage", ["relation", "bytes", "bytes per chunk"],
                    [[n, v["bytes"], v["bytes_per_chunk"]] for n, v in payload["storage"].items()])  # fmt: skip
        payload["search"] = check_and_time(db.url, name, cid, queries, args.rounds, args.k)
        console.print(payload["search"]["exactness"])
        for kind, figures in payload["search"]["latency"].items():
            rows = [[m, *v.values()] for m, v in figures.items() if isinstance(v, dict)]
            print_table(f"{kind}: {figures['queries']} queries, lexemes "
                        f"{figures['lexemes in the collection per query (median, max)']}",
                        ["method", "p50 ms", "p95 ms", "p50 ratio", "p95 ratio", "median ratio"], rows)  # fmt: skip
        if args.pruning:
            sample = [x for x in queries if x[0] == "keywords"][: args.pruning]
            sample += [x for x in queries if x[0] == "questions"][: args.pruning]
            payload["postings read with the true k-th score as the bar"] = pruning(
                db.url, name, cid, sample, args.k, args.block
            )
            console.print(payload["postings read with the true k-th score as the bar"])
        question = next(q for kind, q in queries if kind == "questions")
        payload["plans of one question"] = {"query": question, **plans(db.url, name, cid, question, args.k)}
        if args.write_rounds:
            payload["write"] = write_cost(db.url, cid, args.write_rounds, args.write_batch)
            print_facts("chunk inserts", payload["write"])
        # The B-tree as the triggers grew it (page splits) against the same rebuilt at once.
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute("REINDEX INDEX memora.pk_posting")
            payload["storage after REINDEX"] = storage(db.url, payload["load"]["chunks"])["posting B-tree (pk_posting)"]
        console.print("posting B-tree after REINDEX", payload["storage after REINDEX"])
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
