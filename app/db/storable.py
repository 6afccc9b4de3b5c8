"""What PostgreSQL can store as text and jsonb, checked before a write so bad input is a 422, not a 500."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator

from app.limits import FLOAT32_SMALLEST, max_json_depth


def unstorable(value: Any, max_depth: int | None = None) -> str | None:
    """Why PostgreSQL could not store VALUE (NUL, a lone surrogate from a \\u escape, NaN or infinity in JSON, or
    nesting deeper than MAX_DEPTH, default MEMORA_MAX_JSON_DEPTH), looking through dicts and lists, else None.

    The walk is a loop, not recursion, so a value nested thousands deep is refused rather than a RecursionError.
    """
    limit = max_json_depth() if max_depth is None else max_depth
    level: list[Any] = [value]  # the values at one depth: a level at a time, so no (value, depth) pairs are made
    depth = 0
    while level:
        below: list[Any] = []
        for item in level:
            if isinstance(item, str):
                if "\x00" in item:
                    return "holds a NUL character, which PostgreSQL cannot store"
                if not item.isascii():
                    try:
                        item.encode()
                    except UnicodeEncodeError:
                        return "holds an unpaired surrogate, which is not text"
            elif isinstance(item, dict | list | tuple):
                if depth >= limit:
                    return f"is nested deeper than {limit} levels (MEMORA_MAX_JSON_DEPTH)"
                below += item
                if isinstance(item, dict):
                    below += item.values()
            elif isinstance(item, float) and not math.isfinite(item):
                return "holds NaN or infinity, which JSON does not have"
        level, depth = below, depth + 1
    return None


def _storable(value: Any) -> Any:
    if reason := unstorable(value):
        raise ValueError(reason)
    return value


def _real(value: float) -> float:
    if value != 0 and abs(value) < FLOAT32_SMALLEST:
        raise ValueError(f"must be 0 or at least {FLOAT32_SMALLEST:g} in magnitude (PostgreSQL real underflows)")
    return value


Storable = AfterValidator(_storable)
"""A pydantic validator for fields stored as text or jsonb: `Annotated[str, Storable]`."""

StorableText = Annotated[str, Storable]
StorableObject = Annotated[dict[str, Any], Storable]

Real = AfterValidator(_real)
"""A pydantic validator for floats stored as PostgreSQL real: `Annotated[float, Real]`."""
