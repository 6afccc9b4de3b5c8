"""SQL written as text, held one way: a `Query` constant beside the code that runs it.

A query names Memora's objects as `memora.<name>`, as docs/sql.md and psql users spell them, and takes its values
as psycopg parameters (`%(name)s`, so a literal percent sign is `%%`). At run time `memora.` becomes the schema
the connection works in (MEMORA_DB_SCHEMA, carried by the engine's schema_translate_map), the same rewrite the
SQL files get (memora_migrations.files.for_schema). Names that are data, such as a collection's partition or a
dataset's index, go in `{name}` slots filled through psycopg.sql.Identifier, never by string formatting.

Queries that SQLAlchemy Core can say (select(Document)...) stay Core: schema_translate_map reaches those itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg.sql import SQL, Composable, Identifier
from sqlalchemy import Connection, CursorResult
from sqlalchemy.orm import Session

from app.db.models import SCHEMA
from memora_migrations.files import for_schema as in_schema


def schema_of(conn: Connection) -> str:
    """The schema Memora's tables live in on this connection (MEMORA_DB_SCHEMA through schema_translate_map)."""
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    schema: str = translate.get(SCHEMA, SCHEMA)
    return schema


class Query:
    """One statement as SQL text, run in the connection's schema."""

    __slots__ = ("_by_schema", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._by_schema: dict[str, str] = {}

    def sql(self, conn: Connection | Session, **identifiers: str | Composable) -> str:
        """The statement for CONN's schema with IDENTIFIERS in their {slots}: a str is quoted as an identifier, a
        psycopg.sql.Composable (a Literal, or SQL built from them) goes in as it is."""
        conn = _connection(conn)
        schema = schema_of(conn)
        text = self._by_schema.get(schema)
        if text is None:
            text = self._by_schema[schema] = in_schema(self.text, schema)
        if not identifiers:
            return text
        names = {slot: Identifier(v) if isinstance(v, str) else v for slot, v in identifiers.items()}
        return SQL(text).format(**names).as_string(conn.connection.driver_connection)

    def run(
        self,
        conn: Connection | Session,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        /,
        **identifiers: str | Composable,
    ) -> CursorResult[Any]:
        """Execute the statement with PARAMS, once per mapping when they are a list (executemany), with IDENTIFIERS in
        its {slots}; rows come back as SQLAlchemy's."""
        conn = _connection(conn)
        if params is None or isinstance(params, Mapping):
            return conn.exec_driver_sql(self.sql(conn, **identifiers), dict(params) if params is not None else None)
        return conn.exec_driver_sql(self.sql(conn, **identifiers), [dict(p) for p in params])

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


def _connection(conn: Connection | Session) -> Connection:
    return conn.connection() if isinstance(conn, Session) else conn
