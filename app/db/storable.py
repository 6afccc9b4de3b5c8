"""What PostgreSQL can store as text and jsonb, checked before a write so bad input is a 422, not a 500."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator


def unstorable(value: Any) -> str | None:
    """Why PostgreSQL could not store VALUE (NUL, a lone surrogate from a \\u escape, NaN or infinity in JSON),
    looking through dicts and lists, else None."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple):
            pending += item
        elif isinstance(item, str):
            if "\x00" in item:
                return "holds a NUL character, which PostgreSQL cannot store"
            try:
                item.encode()
            except UnicodeEncodeError:
                return "holds an unpaired surrogate, which is not text"
        elif isinstance(item, float) and not math.isfinite(item):
            return "holds NaN or infinity, which JSON does not have"
    return None


def _storable(value: Any) -> Any:
    if reason := unstorable(value):
        raise ValueError(reason)
    return value


Storable = AfterValidator(_storable)
"""A pydantic validator for fields stored as text or jsonb: `Annotated[str, Storable]`."""

StorableText = Annotated[str, Storable]
StorableObject = Annotated[dict[str, Any], Storable]
