"""Memora's database migrations, importable on their own by any project that shares Memora's database.

    import memora_migrations

    memora_migrations.upgrade("postgresql://app:secret@db/app")      # or a connection: op.get_bind()
    memora_migrations.downgrade(url_or_connection, "base")
    memora_migrations.ALEMBIC_INI                                      # for `alembic -c ... -x url=...`
    memora_migrations.include_name, memora_migrations.include_object   # for the host's autogenerate

Nothing here imports the `app` package (Memora's service): a host project's own `app` package would shadow it.
Memora's service imports this package, never the reverse. docs/migrations.md shows how a host uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memora_migrations.api import config, current_revision, downgrade, head_revision, sql_script, upgrade
    from memora_migrations.errors import MigrationError
    from memora_migrations.files import ALEMBIC_INI, MIGRATIONS_DIR
    from memora_migrations.filters import include_name, include_object

# Where each public name lives. They load when first used, so importing a light module of this package
# (database.py, which Memora's settings use) does not load Alembic.
_HOMES = {
    "ALEMBIC_INI": "files",
    "MIGRATIONS_DIR": "files",
    "MigrationError": "errors",
    "config": "api",
    "current_revision": "api",
    "downgrade": "api",
    "head_revision": "api",
    "include_name": "filters",
    "include_object": "filters",
    "sql_script": "api",
    "upgrade": "api",
}

__all__ = [
    "ALEMBIC_INI",
    "MIGRATIONS_DIR",
    "MigrationError",
    "config",
    "current_revision",
    "downgrade",
    "head_revision",
    "include_name",
    "include_object",
    "sql_script",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'memora_migrations' has no attribute {name!r}")
    return getattr(importlib.import_module(f"memora_migrations.{home}"), name)
