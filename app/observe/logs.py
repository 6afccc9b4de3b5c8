"""Log lines as text or JSON (MEMORA_LOG_FORMAT), each carrying the request id of the work it is about."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from app.observe.context import current_request_id

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Put the current request id on every record as `request_id` (None outside a request), for the formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, and the traceback as
    `exception` when there is one. Every value is a string or null, so a log pipeline needs no schema."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def handler(log_format: str, stream: Any = None) -> logging.Handler:
    """A stream handler (stderr unless STREAM) writing LOG_FORMAT lines with the request id filled in."""
    out = logging.StreamHandler(stream)
    out.addFilter(RequestIdFilter())
    out.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return out
