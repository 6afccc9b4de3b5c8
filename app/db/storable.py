"""What PostgreSQL cannot store in text and jsonb; request schemas of every feature check it, so it stays light."""

from __future__ import annotations

from typing import Any


def unstorable(value: Any) -> str | None:
    """Why PostgreSQL could not store VALUE's strings (NUL, or a lone surrogate from a \\u escape), else None."""
    if isinstance(value, dict):
        return next(filter(None, map(unstorable, [*value.keys(), *value.values()])), None)
    if isinstance(value, list):
        return next(filter(None, map(unstorable, value)), None)
    if isinstance(value, str):
        if "\x00" in value:
            return "holds a NUL character, which PostgreSQL cannot store"
        try:
            value.encode()
        except UnicodeEncodeError:
            return "holds an unpaired surrogate, which is not text"
    return None
