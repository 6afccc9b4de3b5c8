"""The parquet export: one column per record field of the formats present (strings as they are, anything else as
JSON text) after example_id, split and format; then label, labels and the integer arrays typed; metadata as JSON
text. Written a row group at a time, each handed on as soon as ParquetWriter has written it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from app.training.exports.lines import CHAT_KEYS, Progress, groups
from app.training.formats import records
from app.training.formats.rules import INT_ARRAYS

ROW_GROUP = 10_000

# The record fields of each format.
PARQUET_FIELDS = {
    "chat": ("messages", *CHAT_KEYS),
    "completion": ("prompt", "completion"),
    "classification": ("text",),
    "pairs": ("query", "anchor", "positive", "negative"),
    "triplets": ("anchor", "positive", "negative"),
    "qa": ("id", "title", "question", "context", "answers", "is_impossible"),
    "custom": (),  # the keys its records have
}
PARQUET_RESERVED = ("example_id", "split", "format", "label", "labels", "metadata", *INT_ARRAYS)


def blocks(
    rows: Iterable[dict[str, Any]], counts: Mapping[str, int], custom_keys: list[str], tick: Progress
) -> Iterator[bytes]:
    """ROWS as a parquet file whose columns fit the formats in COUNTS (CUSTOM_KEYS: the custom records' fields)."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    fields = [(name, pa.int64()) for name in ("example_id",)] + [(n, pa.string()) for n in ("split", "format")]
    record_fields: list[str] = []
    for fmt in records.FORMATS:
        if fmt in counts:
            extra = custom_keys if fmt == "custom" else PARQUET_FIELDS[fmt]
            record_fields += [name for name in extra if name not in record_fields]
    fields += [(name, pa.string()) for name in record_fields]
    if "classification" in counts:
        fields += [("label", pa.string()), ("labels", pa.list_(pa.string()))]
    if "custom" in counts:
        fields += [(name, pa.list_(pa.int32())) for name in INT_ARRAYS]
    fields.append(("metadata", pa.string()))
    schema = pa.schema(fields)
    sink = _Sink()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for group in groups(iter(rows), ROW_GROUP):
            columns: dict[str, list[Any]] = {name: [] for name, _ in fields}
            for row in group:
                _parquet_row(row, columns, record_fields)
            writer.write_table(pa.Table.from_pydict(columns, schema=schema), row_group_size=ROW_GROUP)
            tick(len(group))
            yield sink.take()
    yield sink.take()


def _parquet_row(row: Mapping[str, Any], columns: dict[str, list[Any]], record_fields: list[str]) -> None:
    record = records.to_record(row)
    columns["example_id"].append(row["id"])
    columns["split"].append(row["split"])
    columns["format"].append(row["format"])
    for name in record_fields:
        value = record.get(name)
        columns[name].append(
            value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        )
    for name in ("label", "labels", *INT_ARRAYS):
        if name in columns:
            columns[name].append(row[name])
    columns["metadata"].append(json.dumps(row["metadata"], ensure_ascii=False))


class _Sink:
    """A write-only file for ParquetWriter; take() hands on what was written since the last call."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts = []
        return data
