"""Engines and sessions: sync SQLAlchemy 2.0 on psycopg 3, shared by the API, the worker and the CLI.

SQLAlchemy, psycopg and the models are imported where they are used: `memora --help` imports this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from app.config import Settings
from app.db.embedded import EmbeddedPostgres

if TYPE_CHECKING:
    from sqlalchemy import Dialect, Engine
    from sqlalchemy.orm import Session, sessionmaker


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL to use: MEMORA_DATABASE_URL, else the embedded server (started if needed) as the service
    role (app/db/service_role.py), or as its superuser while the schema has no owner role for the service to join."""
    if settings.database_url is not None:
        return settings.database_url
    from app.db import service_role

    embedded = EmbeddedPostgres(settings.data_dir, settings.pg_port)
    server = embedded.ensure_running()
    return sqlalchemy_url(service_role.ensure(embedded, server, settings.db_schema) or server.url())


def admin_url(settings: Settings) -> str:
    """The SQLAlchemy URL for what the service role may not do (migrations, roles): MEMORA_DATABASE_URL, whose role
    the operator chose, else the embedded server's superuser."""
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


# The embedded server each engine's connections go to, by dialect (an engine's execution_options copies share it).
_FOLLOWED: WeakKeyDictionary[Dialect, EmbeddedPostgres] = WeakKeyDictionary()


def make_engine(settings: Settings, application_name: str, url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for one kind of process (api, worker, cli), named in pg_stat_activity as memora-<kind>."""
    from sqlalchemy import create_engine, event

    from app.db.models import SCHEMA

    # Only the API (and its reads on replicas) gets statement_timeout: migrations, the worker's COPY and index builds
    # may take long.
    timeout = settings.statement_timeout_ms if application_name in ("api", "api-read") else 0
    options = f"-c statement_timeout={timeout}" if timeout else ""
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", settings.pool_size)
    engine = create_engine(
        url or database_url(settings),
        pool_pre_ping=True,
        connect_args={"application_name": f"memora-{application_name}", "options": options},
        **kwargs,
    )
    if settings.embedded and url is None:  # an explicit URL is a server of the caller's choosing
        follow(engine, EmbeddedPostgres(settings.data_dir, settings.pg_port))
    if settings.db_schema != SCHEMA:
        engine = engine.execution_options(schema_translate_map={SCHEMA: settings.db_schema})
    event.listen(engine, "connect", _register_vector)
    return engine


def follow(engine: Engine, server: EmbeddedPostgres) -> None:
    """Connect ENGINE to wherever SERVER runs now, read from its data directory at each new connection.

    The embedded server may come back on another port (MEMORA_PG_PORT=0 picks a free one at each start) or with
    another password file: an engine that kept the URL it was made with would never reach it again.
    """
    from sqlalchemy import event

    _FOLLOWED[engine.dialect] = server

    @event.listens_for(engine, "do_connect")
    def _current_address(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        cparams.update(_address(server, cparams.get("user")))


def sibling(engine: Engine, **kwargs: Any) -> Engine:
    """A new engine on ENGINE's database (with KWARGS, e.g. its own pool), that follows the embedded server as
    ENGINE does."""
    from sqlalchemy import create_engine

    own = create_engine(engine.url, **kwargs)
    if (server := _FOLLOWED.get(engine.dialect)) is not None:
        follow(own, server)
    return own


def _address(server: EmbeddedPostgres, user: str | None) -> dict[str, Any]:
    import psycopg

    from app.db.service_role import password_of

    running = server.status()
    if running is None:
        # No SQLSTATE: what the API's error handler reads as "the database is unavailable" (a 503).
        raise psycopg.OperationalError(f"the embedded PostgreSQL in {server.pgdata} is not running")
    return {"host": "127.0.0.1", "port": running.port, "password": password_of(server, user) or running.password}


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


def _set_statement_timeout(session: Session, transaction: Any, connection: Any) -> None:
    timeout = session.info.get("statement_timeout_ms")
    # A savepoint begins too: its transaction's SET LOCAL holds in it already, and setting it again is a round trip.
    if timeout is not None and not transaction.nested:
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout)}")
