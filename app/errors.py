"""One error hierarchy: every error a user can cause or meet carries its message and HTTP status."""

from __future__ import annotations

import json
from typing import Any


class AppError(Exception):
    """An error with a message meant for the user and the HTTP status that fits it."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class NotFoundError(AppError):
    status = 404
    code = "not_found"


class ConflictError(AppError):
    status = 409
    code = "conflict"


class InvalidInputError(AppError):
    status = 422
    code = "invalid_input"


def invalid_json(exc: json.JSONDecodeError, field: str = "body") -> InvalidInputError:
    """FIELD is not JSON: where, as line and column (not a character offset), and why."""
    reason = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    problem = {"field": field, "reason": reason, "line": exc.lineno, "column": exc.colno}
    return InvalidInputError(f"invalid request: {field}: {reason}", details=[problem])


class UnreadableFileError(InvalidInputError):
    """A file in a supported format whose content cannot be read: bad encoding, a damaged PDF, a bad JSON line."""

    code = "unreadable_file"


class PayloadTooLargeError(AppError):
    status = 413
    code = "payload_too_large"


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
    """An embedding provider failed or answered with something unusable; the message says which and why."""

    status = 502
    code = "embedding_provider"


class ChatProviderError(AppError):
    """The chat model's server failed or refused; the message says which server and model, and why."""

    status = 502
    code = "chat_provider"


class UpstreamTimeoutError(AppError):
    """An upstream server (chat model, reranker) did not answer, or stopped sending, within the timeout."""

    status = 504
    code = "upstream_timeout"
