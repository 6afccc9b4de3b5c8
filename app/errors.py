"""One error hierarchy: every error a user can cause or meet carries its message and HTTP status."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Self

if TYPE_CHECKING:
    from pydantic import ValidationError

Problem = dict[str, Any]
"""One thing wrong with an input: {"field": where, "reason": why}, plus "line" when it comes from a file."""

SHOWN_PROBLEMS = 5


class AppError(Exception):
    """An error with a message meant for the user and the HTTP status that fits it."""

    status = 500
    code = "internal_error"
    headers: Mapping[str, str] = MappingProxyType({})  # sent with the error response (WWW-Authenticate, Retry-After)

    def __init__(self, message: str, *, details: Any = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if headers is not None:
            self.headers = headers

    @classmethod
    def about_file(cls, file: str, reason: str, **extra: Any) -> Self:
        """A problem of FILE as a whole: "FILE REASON" ("notes.pdf is encrypted"), with the problem as details."""
        return cls(f"{file} {reason}", details=[{"file": file, "reason": reason, **extra}])

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class UnauthorizedError(AppError):
    """No API key, or one that is unknown, expired or revoked: the client must say who it is."""

    status = 401
    code = "unauthorized"
    headers: Mapping[str, str] = MappingProxyType({"WWW-Authenticate": 'Bearer realm="memora"'})


class ForbiddenError(AppError):
    """A valid key whose role is below what the route needs; the message names the role."""

    status = 403
    code = "forbidden"


class RateLimitedError(AppError):
    """A key past its requests per minute; Retry-After says when the next one is allowed."""

    status = 429
    code = "rate_limited"


class HostNotAllowedError(AppError):
    """A Host header this server does not answer to (app/api/hosts.py): DNS rebinding, or MEMORA_ALLOWED_HOSTS unset."""

    status = 400
    code = "host_not_allowed"


class CrossOriginError(AppError):
    """A write sent by a web page of another origin (app/api/origins.py), which the browser sent without asking."""

    status = 403
    code = "cross_origin_request"


class NotFoundError(AppError):
    status = 404
    code = "not_found"


class ConflictError(AppError):
    status = 409
    code = "conflict"


class InvalidInputError(AppError):
    """Input that cannot be used; details list every problem, each naming its field and reason."""

    status = 422
    code = "invalid_input"

    @classmethod
    def for_field(cls, field: str, reason: str, **extra: Any) -> Self:
        """One bad field: "FIELD: REASON", with the problem as details (as the API's validation errors have it)."""
        return cls(f"{field}: {reason}", details=[{"field": field, "reason": reason, **extra}])

    @classmethod
    def for_problems(cls, problems: Sequence[Problem], what: str = "invalid request") -> Self:
        """Several problems: "WHAT: field: reason; ..." (the first few), all of them as details."""
        return cls(f"{what}: {summary(problems)}", details=list(problems))

    @property
    def problems(self) -> list[Problem]:
        """The problems in details (none when details hold something else, such as an import report)."""
        details = self.details if isinstance(self.details, list) else []
        return [p for p in details if isinstance(p, dict) and "field" in p]

    def renamed(self, old: str, new: str) -> InvalidInputError:
        """The same error with field OLD (and fields under it) called NEW, for a request that names it so."""

        def rename(field: str) -> str:
            return new + field[len(old) :] if field == old or field.startswith((old + ".", old + "[")) else field

        details = [{**p, "field": rename(str(p["field"]))} for p in self.problems] or self.details
        return type(self)(self.message.replace(old, new), details=details)


def summary(problems: Sequence[Mapping[str, Any]], shown: int = SHOWN_PROBLEMS) -> str:
    """The problems as one line: "field: reason; field: reason (and 3 more)"."""
    text = "; ".join(f"{p['field']}: {p['reason']}" if p.get("field") else str(p["reason"]) for p in problems[:shown])
    return text + (f" (and {len(problems) - shown} more)" if len(problems) > shown else "")


def problems_of(exc: ValidationError, field: Callable[[Sequence[int | str]], str] | None = None) -> list[Problem]:
    """Pydantic's errors as problems; FIELD names a location (default: "a.b[2].c")."""
    name = field or location
    return [{"field": name(error["loc"]), "reason": error["msg"]} for error in exc.errors()]


def location(parts: Iterable[int | str], prefix: str = "") -> str:
    """("documents", 1, "content") -> "documents[1].content": list positions in brackets, keys after dots."""
    text = prefix
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def invalid_json(exc: json.JSONDecodeError, field: str = "body") -> InvalidInputError:
    """FIELD is not JSON: where, as line and column (not a character offset), and why."""
    reason = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    return InvalidInputError.for_problems([{"field": field, "reason": reason, "line": exc.lineno, "column": exc.colno}])


class UnreadableFileError(InvalidInputError):
    """A file in a supported format whose content cannot be read: bad encoding, a damaged PDF, a bad JSON line."""

    code = "unreadable_file"

    @classmethod
    def at_line(cls, file: str, line: int, reason: str, field: str | None = None) -> Self:
        """A problem on LINE of FILE (of FIELD in that line's record, when there is one)."""
        where = f"{file} line {line}: " + (f"{field}: " if field else "")
        return cls(where + reason, details=[{"file": file, "line": line, "field": field, "reason": reason}])


class PayloadTooLargeError(AppError):
    status = 413
    code = "payload_too_large"


class StatementTimeoutError(AppError):
    """A statement ran past the statement timeout of its kind of request; the message names the setting."""

    status = 504
    code = "statement_timeout"


class UnsupportedMediaTypeError(AppError):
    status = 415
    code = "unsupported_media_type"


class DatabaseUnavailableError(AppError):
    """The database cannot be reached or is not in a state Memora can use."""

    status = 503
    code = "database_unavailable"


class EmbeddedPostgresError(DatabaseUnavailableError):
    """The embedded PostgreSQL could not be set up or started; the message says why and how to fix it."""

    code = "embedded_postgres"


class EmbeddingProviderError(AppError):
    """An embedding provider failed or answered with something unusable; the message says which and why.

    PERMANENT: asking again cannot help (a rejected key, an unknown model, a text the provider refuses), so the
    worker fails the document at once instead of retrying. WHOLE_REQUEST: the failure is about the request as such
    (a bad key, an unknown model, a server error, a timeout), not one of its texts, so the worker does not try the
    texts one document at a time: every document of the request shares the outcome.
    """

    status = 502
    code = "embedding_provider"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        permanent: bool = False,
        whole_request: bool = False,
        about: Literal["model", "dimensions"] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.permanent = permanent
        self.whole_request = whole_request
        self.about = (
            about  # the choice the server refused: its model (404), or its dimensions (vectors of another width)
        )


class UpstreamError(AppError):
    """An OpenAI-compatible server (chat, reranking) failed or refused; the message says which server and model, and
    why. ANSWERED is the HTTP status the server answered with, None when it did not answer or answered garbage."""

    status = 502

    def __init__(self, message: str, *, details: Any = None, answered: int | None = None) -> None:
        super().__init__(message, details=details)
        self.answered = answered

    def unknown_model(self, field: str, model: str) -> AppError:
        """This error, or a 422 naming FIELD when the server answered 404 to MODEL, a name the request gave: OpenAI
        and the servers that copy it say 404 `model_not_found` for a model they do not have, which is the client's
        mistake, not the server's."""
        if self.answered != 404:
            return self
        return InvalidInputError.for_field(field, f"the server has no model {model!r} ({self.message})")


class ChatProviderError(UpstreamError):
    """The chat model's server failed or refused."""

    code = "chat_provider"


class UpstreamTimeoutError(AppError):
    """An upstream server (chat model, reranker) did not answer, or stopped sending, within the timeout."""

    status = 504
    code = "upstream_timeout"
