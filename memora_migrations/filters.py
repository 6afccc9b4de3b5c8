"""Filters for Alembic's autogenerate: a host's, which must not see Memora's schema, and Memora's own.

A host whose env.py compares every schema (include_schemas=True) would otherwise find Memora's tables in the
database and none in its models, and propose to drop them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from memora_migrations.files import DEFAULT_SCHEMA
from memora_migrations.target import schema_from_environment

VERSION_TABLE = "alembic_version"
_PARTITION = re.compile(r"^embedding_c\d+$")
_DATASET_INDEX = re.compile(r"^ix_example_embedding_d\d+$")


def include_name(
    name: str | None, type_: str, parent_names: Mapping[str, str | None], *, schema: str | None = None
) -> bool:
    """For a host's env.py: every name but Memora's schema (SCHEMA, else MEMORA_DB_SCHEMA, else memora)."""
    if type_ == "schema":
        return name != (schema or schema_from_environment())
    return True


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any, *, schema: str | None = None
) -> bool:
    """For a host's env.py: leave out what the host's own models declare in Memora's schema (a table mapped onto
    memora.collection to join with it, say), which Memora's migrations make."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return getattr(table, "schema", None) != (schema or schema_from_environment())


def memora_objects(
    name: str | None, type_: str, parent_names: Mapping[str, str | None], *, schema: str = DEFAULT_SCHEMA
) -> bool:
    """What Memora's own autogenerate compares: its schema, less the version table, the per-collection partitions
    and the per-dataset embedding indexes that deduplication creates
    (sql/idempotent/011-example-index.sql)."""
    if type_ == "schema":
        return name == schema
    if type_ == "table":
        return name != VERSION_TABLE and not _PARTITION.match(name or "")
    if type_ == "index":
        return not _DATASET_INDEX.match(name or "")
    return True
