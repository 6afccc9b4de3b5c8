"""Statement timeouts per kind of request: a search should give up long before an export, which may rightly read
a dataset for minutes. Routes declare their kind; the request's session sets the timeout of that kind at the start
of each of its transactions (SET LOCAL, so it holds across the commits a search makes before calling a model, and
never leaks into the next request on the pooled connection)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Depends, Request

from app.config import Settings
from app.errors import StatementTimeoutError

StatementKind = Literal["search", "import", "export"]

_SETTINGS: dict[str | None, str] = {
    "search": "search_statement_timeout_ms",
    "import": "import_statement_timeout_ms",
    "export": "export_statement_timeout_ms",
    None: "statement_timeout_ms",
}


@dataclass(frozen=True, slots=True)
class StatementTimeout:
    """MS milliseconds (0: none), set by the Settings field SETTING."""

    ms: int
    setting: str
    per_transaction: bool

    @property
    def variable(self) -> str:
        return f"MEMORA_{self.setting.upper()}"

    def session_info(self) -> dict[str, Any]:
        """What the session factory's after_begin hook reads (app/db/engine.py)."""
        return {"statement_timeout_ms": self.ms} if self.per_transaction else {}

    def error(self) -> StatementTimeoutError:
        return StatementTimeoutError(
            f"a database statement ran past {self.ms} ms and was cancelled; raise {self.variable} "
            "or ask for less (a smaller k, fewer candidates, a narrower filter)",
            details={"setting": self.variable, "timeout_ms": self.ms},
        )


def statement_kind(kind: StatementKind) -> Any:
    """A route dependency: the requests of this route run under KIND's statement timeout."""

    def mark(request: Request) -> None:
        request.state.statement_kind = kind

    return Depends(mark)


def of_request(request: Request, settings: Settings) -> StatementTimeout:
    """The timeout REQUEST runs under: its route's kind, or the connections' own (MEMORA_STATEMENT_TIMEOUT_MS)."""
    kind: str | None = getattr(request.state, "statement_kind", None)
    setting = _SETTINGS[kind]
    return StatementTimeout(getattr(settings, setting), setting, per_transaction=kind is not None)


def is_timeout(exc: BaseException) -> bool:
    """True for PostgreSQL's "canceling statement due to statement timeout" (SQLSTATE 57014), as SQLAlchemy raises
    it or as psycopg does (imports COPY through the driver's connection); a cancel for another reason
    (pg_cancel_backend) is not a timeout."""
    from psycopg.errors import QueryCanceled
    from sqlalchemy.exc import DBAPIError

    error = exc.orig if isinstance(exc, DBAPIError) else exc
    return isinstance(error, QueryCanceled) and "statement timeout" in str(error).lower()
