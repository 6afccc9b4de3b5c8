"""The files that ship beside the code, and the SQL in them ready for any schema.

In a source checkout they are at the repository root (alembic.ini, migrations/, sql/); an installed wheel carries
them inside this package, in _bundled/ (pyproject.toml, force-include).

SQL files are written for schema `memora`, the default, so people can read and run them as they are. For another
schema every schema-qualified name `memora.` is rewritten; nothing else in a file may spell `memora.`.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import DDL

_PACKAGE = Path(__file__).resolve().parent
_BUNDLED = _PACKAGE / "_bundled"
ROOT = _BUNDLED if (_BUNDLED / "alembic.ini").exists() else _PACKAGE.parent

ALEMBIC_INI = ROOT / "alembic.ini"
MIGRATIONS_DIR = ROOT / "migrations"
INCREMENTAL_DIR = ROOT / "sql" / "incremental"
IDEMPOTENT_DIR = ROOT / "sql" / "idempotent"

DEFAULT_SCHEMA = "memora"
_QUALIFIED = re.compile(r'(?<![\w"$.])memora(?=\.)')


def for_schema(text: str, schema: str) -> str:
    """TEXT, written for schema memora, for SCHEMA: every `memora.` qualification becomes `SCHEMA.`. The SQL files
    and the queries the app holds as text (app/db/query.py) both go through here. SCHEMA is a plain lower-case
    identifier (the settings check it) and is not quoted: it also prefixes names that are not identifiers, such as
    the transaction settings memora.example_before_insert keeps its seq blocks in."""
    return text if schema == DEFAULT_SCHEMA else _QUALIFIED.sub(schema, text)


def read(path: Path, schema: str = DEFAULT_SCHEMA) -> str:
    """The SQL file at PATH for SCHEMA."""
    return for_schema(path.read_text(), schema)


def ddl(sql: str) -> DDL:
    """SQL text as one statement that op.execute and context.execute run online and print offline (--sql)."""
    # DDL() applies Python %-formatting to its text, so the format() patterns in the files are escaped.
    return DDL(sql.replace("%", "%%"))  # type: ignore[no-untyped-call]
