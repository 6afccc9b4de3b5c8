"""The SQL files in sql/functions/, ready to run in any schema.

The files are written for schema `memora`, the default, so people can read and run them as they are. For another
schema every schema-qualified name `memora.` is rewritten; nothing else in a file may spell `memora.`.
"""

from __future__ import annotations

import re

from sqlalchemy import DDL

from app.resources import SQL_FUNCTIONS_DIR

DEFAULT_SCHEMA = "memora"
_QUALIFIED = re.compile(r'(?<![\w"$.])memora(?=\.)')


def function_files() -> list[str]:
    """Names of the files in sql/functions/, in the order they apply."""
    return sorted(path.name for path in SQL_FUNCTIONS_DIR.glob("*.sql"))


def read(name: str, schema: str = DEFAULT_SCHEMA) -> str:
    """The text of sql/functions/NAME for SCHEMA."""
    text = (SQL_FUNCTIONS_DIR / name).read_text()
    return text if schema == DEFAULT_SCHEMA else _QUALIFIED.sub(schema, text)


def ddl(name: str, schema: str = DEFAULT_SCHEMA) -> DDL:
    """sql/functions/NAME as one DDL statement, for op.execute in online and offline (--sql) migrations."""
    # DDL() applies Python %-formatting to its text, so the format() patterns in the files are escaped.
    return DDL(read(name, schema).replace("%", "%%"))  # type: ignore[no-untyped-call]
