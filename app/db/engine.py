"""Engines and sessions: sync SQLAlchemy 2.0 on psycopg 3, shared by the API, the worker and the CLI.

SQLAlchemy, psycopg and the models are imported where they are used: `memora --help` imports this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.db.embedded import EmbeddedPostgres

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL to use: MEMORA_DATABASE_URL, else the embedded server (started if needed)."""
    if settings.database_url is not None:
        return settings.database_url
    server = EmbeddedPostgres(settings.data_dir, settings.pg_port).ensure_running()
    return sqlalchemy_url(server.url())


def sqlalchemy_url(libpq_url: str) -> str:
    """postgresql://... as psql takes it -> postgresql+psycopg://... for SQLAlchemy (the settings' rule)."""
    from memora_migrations.database import sqlalchemy_url as with_psycopg

    return with_psycopg(libpq_url)


def libpq_url(url: str) -> str:
    """postgresql+psycopg://... -> postgresql://... as psql and psycopg.connect take it."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(settings: Settings, application_name: str, url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for one kind of process (api, worker, cli), named in pg_stat_activity as memora-<kind>."""
    from sqlalchemy import create_engine, event

    from app.db.models import SCHEMA

    # Only the API gets statement_timeout: migrations, the worker's COPY and index builds may take long.
    timeout = settings.statement_timeout_ms if application_name == "api" else 0
    options = f"-c statement_timeout={timeout}" if timeout else ""
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", settings.pool_size)
    engine = create_engine(
        url or database_url(settings),
        pool_pre_ping=True,
        connect_args={"application_name": f"memora-{application_name}", "options": options},
        **kwargs,
    )
    if settings.db_schema != SCHEMA:
        engine = engine.execution_options(schema_translate_map={SCHEMA: settings.db_schema})
    event.listen(engine, "connect", _register_vector)
    return engine


def _register_vector(dbapi_connection: Any, _record: Any) -> None:
    """Teach psycopg the vector types, once the extension exists (it does not before the first migration), and to
    read json so that no stored value breaks a read (app/db/jsonb.py)."""
    from pgvector.psycopg import register_vector
    from psycopg.types import TypeInfo

    from app.db import jsonb

    jsonb.register(dbapi_connection)
    if TypeInfo.fetch(dbapi_connection, "vector") is not None:
        register_vector(dbapi_connection)
    dbapi_connection.commit()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ENGINE; one made with info={"statement_timeout_ms": n} runs each of its transactions under that
    statement_timeout (app/api/timeouts.py)."""
    from sqlalchemy import event
    from sqlalchemy.orm import sessionmaker

    factory = sessionmaker(engine, expire_on_commit=False)
    event.listen(factory, "after_begin", _set_statement_timeout)
    return factory


def _set_statement_timeout(session: Session, _transaction: Any, connection: Any) -> None:
    timeout = session.info.get("statement_timeout_ms")
    if timeout is not None:
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout)}")
