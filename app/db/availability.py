"""Which errors mean that the database is gone (down, restarting, unreachable, the connection lost) rather than that
a statement failed: the first are the API's 503 `database_unavailable` and pass when the database returns, the
second are bugs or bad input and are answered as such."""

from __future__ import annotations

# SQLSTATEs of a server that is going away or not there yet: class 08 (connection exception) is matched by its prefix.
_GOING_AWAY = {
    "57P01",  # admin_shutdown: pg_ctl stop/restart -m fast, pg_terminate_backend
    "57P02",  # crash_shutdown: another backend crashed and the postmaster resets every connection
    "57P03",  # cannot_connect_now: the server is starting up or shutting down
    "53300",  # too_many_connections
}


def database_unavailable(exc: BaseException) -> bool:
    """Is EXC (a SQLAlchemy or psycopg error) the database being out of reach, not a failed statement?

    A statement timeout (57014) and a lock timeout are OperationalErrors too, but the server answered: they are not
    this. An error with no SQLSTATE at all comes from the client side (connection refused, the server closed the
    connection, the connection is closed) and is.
    """
    import psycopg
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    sqlstate = exc.sqlstate
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _GOING_AWAY
