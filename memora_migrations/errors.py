"""The one error memora_migrations raises on its own account."""

from __future__ import annotations

from alembic.util import CommandError


class MigrationError(CommandError):
    """Memora's migrations cannot run: no database named, a bad schema name, a server Memora cannot use.

    A CommandError, so the `alembic` command prints it as one line (FAILED: ...) rather than a traceback.
    """
