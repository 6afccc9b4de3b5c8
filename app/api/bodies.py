"""Request bodies the routes read themselves (to stream them, or to parse JSON their own way): read within a size
limit, and JSON that does not parse named as the rest of the API names bad input."""

from __future__ import annotations

import json
from typing import IO, Any

from fastapi import Request

from app.errors import InvalidInputError, PayloadTooLargeError, invalid_json


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or a 413 as soon as it passes LIMIT bytes (it is never held past that)."""
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
    return bytes(body)


async def spool_body(request: Request, spool: IO[bytes], limit: int, setting: str) -> None:
    """Stream the body into SPOOL (a file), or a 413 naming SETTING as soon as it passes LIMIT bytes."""
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise PayloadTooLargeError(f"file exceeds the limit of {limit} bytes ({setting})")
        spool.write(part)


def parse_json(body: bytes, **options: Any) -> Any:
    """BODY as JSON (OPTIONS go to json.loads); a syntax error is a 422 naming its line and column."""
    try:
        return json.loads(body, **options)
    except json.JSONDecodeError as exc:
        raise invalid_json(exc) from None
    except RecursionError:
        raise too_deep() from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError.for_field("body", f"not valid JSON ({exc})") from None


def too_deep(field: str = "body") -> InvalidInputError:
    """JSON nested so deeply that Python's parser gives up (about a thousand levels), far past MEMORA_MAX_JSON_DEPTH."""
    return InvalidInputError.for_problems([{"field": field, "reason": "JSON nested too deeply to parse"}])
