"""Read-only requests on read replicas (app/db/replicas.py): the sessions read routes get, read-your-writes, and the
headers that say where a request went.

A read route asks for `ReadsDep` (or `ReadSessionDep`) instead of `SessionDep`. Its session is a fit replica's, or
the primary's when none is fit. A read may name a WAL position it must see, the `Memora-LSN` a write returned: in the
`Memora-Read-After` header, or in a search's or answer's `consistency.after`. A replica serves it only once it has
replayed that far; otherwise the primary does. Responses say who served them (`Memora-Served-By`).

A read that loses its replica (stopped, restarting, or a query cancelled by a recovery conflict) marks the replica
down and runs again on the primary, once, before any byte of its response has gone out: `ReadRouting` below.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import timeouts
from app.api.deps import SessionDep, get_session
from app.db.availability import database_unavailable
from app.db.replicas import REPLAYED, ReadReplicas, Replica, parse_lsn
from app.errors import DatabaseUnavailableError, InvalidInputError

READ_AFTER = "Memora-Read-After"
SERVED_BY = "Memora-Served-By"
WRITTEN = "Memora-LSN"


class Reads:
    """Where one request reads: `session()` picks, once, a replica that may serve it or the primary."""

    def __init__(self, request: Request, primary: Session) -> None:
        self.request = request
        self.primary = primary
        self.replica: Replica | None = None
        self._session: Session | None = None
        request.state.read_route = True  # a read: its primary session reports no written position

    def session(self, after: str | None = None) -> Session:
        """The request's read session; AFTER (a position from the body, already validated) joins the header's."""
        if self._session is not None:
            return self._session
        self._session = self._choose(_position(self.request, after))
        return self._session

    def _choose(self, after: int | None) -> Session:
        state = self.request.state
        replicas: ReadReplicas | None = getattr(self.request.app.state, "replicas", None)
        if replicas is not None and not getattr(state, "primary_only", False):
            timeout = timeouts.of_request(self.request, self.request.app.state.settings)
            for replica, ask in replicas.candidates(after):
                session = replica.sessions(info=timeout.session_info())
                try:
                    if ask:
                        replayed = int(session.scalar(text(REPLAYED)) or 0)
                        replica.replayed = replayed
                        if after is not None and replayed < after:
                            session.close()
                            continue
                    else:
                        session.connection()  # checked out with a ping: a replica gone fails here, not mid-route
                except SQLAlchemyError as exc:
                    session.close()
                    if not database_unavailable(exc):
                        raise
                    replica.failed(exc)
                    continue
                self.replica = replica
                state.served_by = f"replica {replica.name}"
                return session
        state.served_by = "primary"
        return self.primary

    def close(self) -> None:
        if self.replica is not None and self._session is not None:
            self._session.close()  # read only: nothing to commit


@contextmanager
def reading(request: Request, primary: Session) -> Iterator[Reads]:
    reads = Reads(request, primary)
    try:
        yield reads
    except SQLAlchemyError as exc:
        if reads.replica is None or not lost_replica(exc):
            raise
        reads.replica.failed(exc)
        request.state.replica_failed = True  # a 503 that ReadRouting runs again on the primary
        reason = str(getattr(exc, "orig", None) or exc).strip()
        raise DatabaseUnavailableError(f"the read replica {reads.replica.name} was lost: {reason}") from exc
    finally:
        try:
            reads.close()
        except SQLAlchemyError as exc:  # its connection went after the route had read what it needed
            if reads.replica is not None and lost_replica(exc):
                reads.replica.failed(exc)


def get_reads(request: Request, primary: SessionDep) -> Iterator[Reads]:
    with reading(request, primary) as reads:
        yield reads


def get_read_session(reads: Annotated[Reads, Depends(get_reads, scope="function")]) -> Session:
    return reads.session()


def get_stream_read_session(request: Request, primary: Annotated[Session, Depends(get_session)]) -> Iterator[Session]:
    """A read session that lives until the response is sent (the default scope), for streamed responses."""
    with reading(request, primary) as reads:
        yield reads.session()


ReadsDep = Annotated[Reads, Depends(get_reads, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
StreamReadSessionDep = Annotated[Session, Depends(get_stream_read_session)]


def lost_replica(exc: BaseException) -> bool:
    """The replica went away, or cancelled the query to replay WAL that conflicts with it (SQLSTATE 40001 on a
    standby: "canceling statement due to conflict with recovery"); either way the primary can answer instead."""
    if database_unavailable(exc):
        return True
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None) == "40001" and "recovery" in str(orig)


def _position(request: Request, after: str | None) -> int | None:
    positions = [parse_lsn(after)] if after is not None else []
    if (header := request.headers.get(READ_AFTER)) is not None:
        try:
            positions.append(parse_lsn(header.strip()))
        except ValueError as exc:
            raise InvalidInputError.for_problems([{"field": f"header.{READ_AFTER}", "reason": str(exc)}]) from None
    return max(positions, default=None)


class ReadRouting:
    """Adds `Memora-Served-By` and `Memora-LSN` to responses, and runs a read that lost its replica again on the
    primary: its 503 is held back, its request body (already read whole by the route) is replayed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or getattr(scope["app"].state, "replicas", None) is None:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        # The body as the route read it, to replay; not kept past a JSON body's limit (an upload is no read).
        received: list[Message] | None = []
        room = scope["app"].state.settings.max_json_body_bytes

        async def recording() -> Message:
            nonlocal received, room
            message = await receive()
            if message["type"] == "http.request" and received is not None:
                room -= len(message.get("body", b""))
                received = [*received, message] if room >= 0 else None
            return message

        retry = False

        async def sending(message: Message) -> None:
            nonlocal retry
            if message["type"] == "http.response.start":
                whole = received is not None and (not received or not received[-1].get("more_body", False))
                retry = message["status"] == 503 and bool(state.get("replica_failed")) and whole
            if not retry:
                await send(_with_headers(message, state))

        await self.app(scope, recording, sending)
        if not retry:
            return
        state.update(primary_only=True, replica_failed=False)
        replay = iter(received or [])

        async def replaying() -> Message:
            return next(replay, None) or await receive()

        async def sending_again(message: Message) -> None:
            await send(_with_headers(message, state))

        await self.app(scope, replaying, sending_again)


def _with_headers(message: Message, state: dict[str, Any]) -> Message:
    if message["type"] != "http.response.start":
        return message
    extra = [(SERVED_BY, state.get("served_by")), (WRITTEN, state.get("written"))]
    headers = list(message.get("headers", []))
    headers += [(name.lower().encode(), value.encode()) for name, value in extra if value]
    return {**message, "headers": headers}
