"""FastAPI dependencies: settings, one session per request, and the checks every request's parameters pass."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.api import timeouts
from app.config import Settings
from app.db.storable import unstorable
from app.errors import InvalidInputError
from app.limits import BIGINT_MAX
from app.observe.timing import part

log = logging.getLogger(__name__)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def check_parameters(request: Request) -> None:
    """Path and query parameters are text PostgreSQL must take: a NUL (%00) or a lone surrogate in any of them is a
    422 naming it, before a route compares it with a column. Runs for every route, ahead of the route's own ones."""
    params = [("path", k, v) for k, v in request.path_params.items()]
    params += [("query", k, v) for k, v in request.query_params.multi_items()]
    for where, name, value in params:
        if isinstance(value, str) and (reason := unstorable(value)):
            raise InvalidInputError.for_problems([{"field": f"{where}.{name}", "reason": reason}])


def get_session(request: Request) -> Iterator[Session]:
    """A session that commits when the request succeeds and rolls back when it fails; its statements run under the
    statement timeout of the route's kind, and one cancelled by it is a 504 naming the setting to raise."""
    timeout = timeouts.of_request(request, request.app.state.settings)
    with request.app.state.sessions(info=timeout.session_info()) as session:
        try:
            yield session
            with part("commit"):
                session.commit()
            if _reports_position(request):
                _report_position(request, session)
        except BaseException as exc:
            session.rollback()
            if timeouts.is_timeout(exc):
                raise timeout.error() from exc
            raise


def _report_position(request: Request, session: Session) -> None:
    """Where the primary's WAL ends now, past this commit: a read that passes it sees the write. The write has
    committed: a failure here leaves the header out, never fails the request."""
    try:
        request.state.written = session.scalar(text("SELECT pg_current_wal_insert_lsn()::text"))
    except SQLAlchemyError as exc:
        log.warning("the write committed, but its WAL position could not be read: %s", exc)


def _reports_position(request: Request) -> bool:
    """Writes answer with the WAL position (Memora-LSN) they may be read after, where there are read replicas."""
    return (
        getattr(request.app.state, "replicas", None) is not None
        and request.method not in ("GET", "HEAD", "OPTIONS")
        and not getattr(request.state, "read_route", False)
    )


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
# scope="function": commit before the response goes out, so a failed commit is the client's 500, not a lost write.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

ExampleId = Annotated[
    int, Path(ge=-BIGINT_MAX - 1, le=BIGINT_MAX, description="An example's id: a bigint, so one past it is a 422.")
]
