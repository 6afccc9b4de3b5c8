"""Keyset pagination's cursors: the `next_cursor` of a page is the key of its last row (an id, an ordinal) in
URL-safe base64, opaque to clients; a cursor this API did not make is a 422 naming `cursor`."""

from __future__ import annotations

import base64

from app.errors import InvalidInputError


def encode(key: int) -> str:
    return base64.urlsafe_b64encode(str(key).encode()).decode()


def decode(cursor: str, *, least: int = 0) -> int:
    """The key CURSOR holds: an integer from LEAST up to a bigint's largest."""
    try:
        value = int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        value = least - 1
    if not least <= value < 2**63:
        raise InvalidInputError.for_field("cursor", "not a cursor this API returned")
    return value
