"""Input limits kept in one place: the documented table in docs/configuration.md ("Limits") lists each, with the
setting that changes it where a user would want to.

Limits that are settings live in app/config.py; this module holds the fixed ones (what PostgreSQL can store) and
reads the settings the validators need, since a pydantic validator has no request to take settings from.
"""

from __future__ import annotations

BIGINT_MAX = 2**63 - 1
"""Largest id PostgreSQL's bigint holds: an id past it names nothing and is a 422, not a query."""

FLOAT32_SMALLEST = 1.2e-38
"""Smallest magnitude PostgreSQL's real (float4) takes without an underflow error; floats stored as real that are
not 0 must be at least this (their ranges say more)."""

READ_JSON_DEPTH = 100
"""Deepest JSON Memora hands out. The setting MEMORA_MAX_JSON_DEPTH may be at most this, so everything stored
through Memora reads back whole; a row nested deeper (written with SQL) is cut at this depth on the way out."""

MAX_TITLE_CHARS = 1_000
MAX_SOURCE_CHARS = 2_048
MAX_DESCRIPTION_CHARS = 10_000
"""Strings without a natural size: a document's title and source; the description of a collection, a dataset or a
snapshot."""

MAX_EXTERNAL_ID = 1_024
"""Longest external_id of a document, in characters (and MAX_KEY_BYTES in bytes)."""

MAX_KEY_BYTES = 1_024
"""Longest external_id and label, in bytes of UTF-8: they are keys of btree indexes, whose entries PostgreSQL keeps
under ~2,700 bytes, so a longer one would fail on insert (1024 characters of CJK text are 3,072 bytes)."""

MAX_LABELS = 1_000
"""Most labels one example may have (format classification, `labels`)."""


def max_json_depth() -> int:
    """MEMORA_MAX_JSON_DEPTH of this process (the settings are read once)."""
    from app.config import get_settings

    return get_settings().max_json_depth
