"""FastAPI dependencies: settings, and one session per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.api import timeouts
from app.config import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(request: Request) -> Iterator[Session]:
    """A session that commits when the request succeeds and rolls back when it fails; its statements run under the
    statement timeout of the route's kind, and one cancelled by it is a 504 naming the setting to raise."""
    timeout = timeouts.of_request(request, request.app.state.settings)
    with request.app.state.sessions(info=timeout.session_info()) as session:
        try:
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            if timeouts.is_timeout(exc):
                raise timeout.error() from exc
            raise


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
# scope="function": commit before the response goes out, so a failed commit is the client's 500, not a lost write.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
