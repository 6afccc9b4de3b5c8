"""A batch cursor: where an epoch stands, checksummed so an edited or garbled cursor is a 422, not a wrong read."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass

from app.errors import InvalidInputError
from app.limits import BIGINT_MAX

_VERSION = 1


@dataclass(frozen=True)
class Cursor:
    """Where an epoch stands: what it reads (dataset, snapshot, split, seed), its size N and its next position."""

    dataset: int
    snapshot: int | None
    split: str | None
    seed: int | None
    n: int
    position: int

    def encode(self) -> str:
        payload = json.dumps([_VERSION, *asdict(self).values()], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(payload + _digest(payload)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            payload, digest = raw[:-8], raw[-8:]
            if _digest(payload) != digest:
                raise ValueError("checksum")
            version, *values = json.loads(payload)
            if version != _VERSION or len(values) != 6:
                raise ValueError("version")
            cursor = cls(*values)
            # The digest is a checksum, not a signature: a hand-made cursor passes it, so its numbers must still
            # fit the bigints they are compared with.
            ints = (cursor.dataset, cursor.n, cursor.position)
            optional = (cursor.snapshot, cursor.seed)
            if (
                not all(type(v) is int and 0 <= v <= BIGINT_MAX for v in ints)
                or not all(v is None or (type(v) is int and 0 <= v <= BIGINT_MAX - 4) for v in optional)
                or cursor.position > cursor.n
            ):
                raise ValueError("values")
        except (ValueError, TypeError, UnicodeDecodeError):
            raise cursor_error("not a cursor this API gave out (garbled or edited)") from None
        return cursor


def _digest(payload: bytes) -> bytes:
    return hashlib.sha256(b"memora-batch-cursor\0" + payload).digest()[:8]


def cursor_error(reason: str) -> InvalidInputError:
    return InvalidInputError.for_field("cursor", reason)
