"""What an export is asked for (from the REST query string or `memora export`'s options), checked by
service.prepare()."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Options:
    """What to export; service.prepare() checks it."""

    format: str | None
    split: str | None = None
    snapshot: str | None = None
    negatives: int = 0
    collection: str | None = None
    kind: str = "chat"
    model: str | None = None
