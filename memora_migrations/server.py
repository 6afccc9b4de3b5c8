"""What Memora needs of a PostgreSQL server, and what it can tell about one. The migrations check it first."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from memora_migrations.errors import MigrationError

MIN_SERVER_VERSION = 150000
MIN_PGVECTOR = (0, 7)


class ServerRequirementError(MigrationError):
    """The server is too old or lacks pgvector."""


@dataclass(frozen=True)
class ServerInfo:
    server_version: str
    server_version_num: int
    pgvector_version: str | None  # installed in this database
    pgvector_available: str | None  # installable (default_version of the extension)


def server_info(conn: Connection) -> ServerInfo:
    row = conn.execute(
        text(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,"
            " (SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
            " (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')"
        )
    ).one()
    return ServerInfo(row[0].split(" ")[0], row[1], row[2], row[3])


def check_requirements(info: ServerInfo) -> None:
    """Refuse, with the reason, a server Memora cannot run on."""
    if info.server_version_num < MIN_SERVER_VERSION:
        raise ServerRequirementError(
            f"PostgreSQL {info.server_version} is too old: Memora needs PostgreSQL 15 or newer."
        )
    version = info.pgvector_version or info.pgvector_available
    if version is None:
        raise ServerRequirementError(
            "the pgvector extension is not available on this PostgreSQL server: install pgvector 0.7 or newer "
            "(https://github.com/pgvector/pgvector#installation), or unset MEMORA_DATABASE_URL to use the "
            "embedded server, which bundles it."
        )
    if _version_tuple(version) < MIN_PGVECTOR:
        raise ServerRequirementError(
            f"pgvector {version} is too old: Memora needs 0.7 or newer (halfvec, iterative index scans); "
            "run ALTER EXTENSION vector UPDATE after installing a newer pgvector."
        )


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())
