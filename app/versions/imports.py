"""Vectors a client brings into an embedding version: a JSON Lines file, one chunk's vector a line.

A line names its chunk by id, or by its document's external id and its place in the document:

    {"chunk_id": 812, "embedding": [0.12, -0.03, ...]}
    {"external_id": "manual-7", "ordinal": 0, "embedding": [...]}

Each line is checked as it is read (its vector's length against the version's dimensions, every number finite) and
copied into a temporary table in binary COPY's format; then one statement resolves the chunks and writes every
vector. A chunk that already has a vector in the version gets the new one. Any bad line, unknown chunk or chunk named
twice refuses the whole file (422, by line), and nothing is written: it is one transaction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.db.models import EmbeddingVersion
from app.db.query import Query
from app.errors import InvalidInputError, NotFoundError

MAX_PROBLEMS = 20  # lines named in one refusal
_BATCH = 2_000  # lines per COPY row batch

# Dropped first: an import inside a caller's longer transaction (a savepoint) may meet the tables of one before it.
_CLEAR = Query("DROP TABLE IF EXISTS pg_temp.vector_import_stage, pg_temp.vector_import_resolved")
_STAGE = Query("""
CREATE TEMP TABLE vector_import_stage (
    line integer NOT NULL, chunk_id bigint, external_id text, ordinal integer, embedding vector NOT NULL
) ON COMMIT DROP
""")
_COPY = Query(
    "COPY pg_temp.vector_import_stage (line, chunk_id, external_id, ordinal, embedding) FROM STDIN (FORMAT BINARY)"
)
# Each line's chunk, NULL where the collection has no such chunk.
_RESOLVE = Query("""
CREATE TEMP TABLE vector_import_resolved ON COMMIT DROP AS
SELECT s.line, ch.id AS chunk_id, s.embedding
FROM pg_temp.vector_import_stage s
LEFT JOIN memora.document d
       ON s.chunk_id IS NULL AND d.collection_id = %(c)s AND d.external_id = s.external_id
LEFT JOIN memora.chunk ch
       ON ch.collection_id = %(c)s
      AND ((s.chunk_id IS NOT NULL AND ch.id = s.chunk_id)
           OR (s.chunk_id IS NULL AND ch.document_id = d.id AND ch.ordinal = s.ordinal))
""")
_UNKNOWN = Query("SELECT line FROM pg_temp.vector_import_resolved WHERE chunk_id IS NULL ORDER BY line LIMIT %(limit)s")
_TWICE = Query("""
SELECT chunk_id, array_agg(line ORDER BY line) FROM pg_temp.vector_import_resolved
WHERE chunk_id IS NOT NULL GROUP BY chunk_id HAVING count(*) > 1 ORDER BY min(line) LIMIT %(limit)s
""")
# The chunks are locked against a delete for the statement (a chunk deleted meanwhile drops out), and the collection's
# row is held as the worker holds it, so an activation waits for the write.
_WRITE = Query("""
WITH locked AS (SELECT FROM memora.collection WHERE id = %(c)s FOR SHARE)
INSERT INTO memora.embedding (collection_id, chunk_id, version, model, embedding)
SELECT %(c)s, r.chunk_id, %(v)s, %(model)s, r.embedding
FROM pg_temp.vector_import_resolved r
JOIN memora.chunk ch ON ch.collection_id = %(c)s AND ch.id = r.chunk_id
WHERE EXISTS (SELECT FROM locked)
FOR KEY SHARE OF ch
ON CONFLICT (collection_id, chunk_id, version) DO UPDATE SET embedding = EXCLUDED.embedding
""")
# An imported version is ready once no chunk of the collection lacks its vector.
_READY = Query("""
UPDATE memora.embedding_version v SET status = 'ready', error = NULL
WHERE v.collection_id = %(c)s AND v.number = %(v)s AND v.status = 'building' AND v.source = 'import'
  AND NOT EXISTS (SELECT FROM memora.chunk ch
                  WHERE ch.collection_id = %(c)s
                    AND NOT EXISTS (SELECT FROM memora.embedding e
                                    WHERE e.collection_id = %(c)s AND e.chunk_id = ch.id AND e.version = %(v)s))
""")


class VectorImport(BaseModel):
    """What an import of vectors did."""

    lines: int = Field(description="Lines read (blank lines are skipped).")
    vectors: int = Field(description="Vectors written, new or replacing one the chunk had in the version.")
    status: str = Field(description="The version's status after the import.")


def import_vectors(db: Session, name: str, number: int, lines: Iterable[bytes]) -> VectorImport:
    """Write the vectors of LINES (JSON Lines, see the module) into version NUMBER of collection NAME."""
    collection = collections.get(db, name)
    version = db.get(EmbeddingVersion, (collection.id, number))
    if version is None:
        raise NotFoundError(f"collection {collection.name!r} has no embedding version {number}")
    conn = db.connection()
    _CLEAR.run(conn)
    _STAGE.run(conn)
    read, problems = _stage(conn, lines, version.dimensions)
    if problems:
        raise _refusal(problems)
    params = {"c": collection.id, "v": number, "model": version.embedding_model, "limit": MAX_PROBLEMS}
    _RESOLVE.run(conn, params)
    unknown = list(_UNKNOWN.run(conn, params).scalars())
    if unknown:
        raise _refusal([(line, f"no chunk of collection {collection.name!r} matches") for line in unknown])
    twice: list[tuple[Any, ...]] = [tuple(row) for row in _TWICE.run(conn, params)]
    if twice:
        raise _refusal([(at[0], f"chunk {chunk} is named again on line(s) {', '.join(map(str, at[1:]))}")
                        for chunk, at in twice])  # fmt: skip
    written = _WRITE.run(conn, params).rowcount
    _READY.run(conn, params)
    db.refresh(version)
    return VectorImport(lines=read, vectors=written, status=version.status)


def _stage(conn: Connection, lines: Iterable[bytes], dimensions: int) -> tuple[int, list[tuple[int, str]]]:
    """COPY the good lines into the stage; the count of lines read and the first problems found."""
    problems: list[tuple[int, str]] = []
    batch: list[tuple[Any, ...]] = []
    read = 0
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(_COPY.sql(conn)) as copy:
        copy.set_types(["int4", "int8", "text", "int4", "vector"])
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            read += 1
            try:
                batch.append((number, *_parse(raw, dimensions)))
            except ValueError as exc:
                problems.append((number, str(exc)))
                if len(problems) >= MAX_PROBLEMS:
                    break
            if len(batch) >= _BATCH:
                _write_rows(copy, batch, problems)
        _write_rows(copy, batch, problems)
    return read, problems


def _write_rows(copy: Any, batch: list[tuple[Any, ...]], problems: list[tuple[int, str]]) -> None:
    if not problems:  # once a line is bad nothing will be written: stop sending rows
        for row in batch:
            copy.write_row(row)
    batch.clear()


def _parse(raw: bytes, dimensions: int) -> tuple[int | None, str | None, int | None, np.ndarray[Any, Any]]:
    """(chunk_id, external_id, ordinal, vector) of one line; ValueError saying what is wrong with it."""
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError("a line must be a JSON object")
    extra = set(record) - {"chunk_id", "external_id", "ordinal", "embedding"}
    if extra:
        raise ValueError(f"unknown field(s): {', '.join(sorted(extra))}")
    chunk_id, external_id, ordinal = record.get("chunk_id"), record.get("external_id"), record.get("ordinal")
    if chunk_id is not None:
        if external_id is not None or ordinal is not None:
            raise ValueError("name the chunk by chunk_id or by external_id and ordinal, not both")
        if not _is_int(chunk_id, 1, 2**63 - 1):
            raise ValueError("chunk_id: must be a positive integer")
    elif external_id is None or ordinal is None:
        raise ValueError("name the chunk: chunk_id, or external_id and ordinal")
    elif not isinstance(external_id, str) or not external_id or "\x00" in external_id:
        raise ValueError("external_id: must be a non-empty string")
    elif not _is_int(ordinal, 0, 2**31 - 1):
        raise ValueError("ordinal: must be an integer from 0")
    embedding = record.get("embedding")
    if not isinstance(embedding, list) or not all(_is_number(x) for x in embedding):
        raise ValueError("embedding: must be an array of numbers")
    if len(embedding) != dimensions:
        raise ValueError(f"embedding: has {len(embedding)} dimensions; the version has {dimensions}")
    with np.errstate(over="ignore"):  # a number past float32's range becomes inf, refused below
        vector = np.asarray(embedding, dtype=np.float32)
    if not np.isfinite(vector).all():
        raise ValueError("embedding: every number must be finite in 32-bit floats")
    return chunk_id, external_id, ordinal, vector


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _refusal(problems: list[tuple[int, str]]) -> InvalidInputError:
    details = [{"field": f"line {line}", "reason": reason} for line, reason in problems[:MAX_PROBLEMS]]
    return InvalidInputError.for_problems(details, "no vector written")
