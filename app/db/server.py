"""What Memora needs of a PostgreSQL server, and what it can tell about one: memora_migrations.server, which the
migrations check before they run (`memora db upgrade`, `memora serve`)."""

from __future__ import annotations

from memora_migrations.server import MIN_PGVECTOR, MIN_SERVER_VERSION, ServerInfo, server_info

__all__ = ["MIN_PGVECTOR", "MIN_SERVER_VERSION", "ServerInfo", "server_info"]
