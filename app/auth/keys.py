"""API keys: made once and shown once, stored as a keyed hash only, checked in constant time.

A key is `mk_` and 43 characters of URL-safe base64 (32 random bytes, 256 bits). Its first 11 characters are its
prefix: stored in clear to find the row and shown in lists, never enough to use it. The rest is kept only as
HMAC-SHA-256 under MEMORA_API_KEY_SECRET (or a fixed secret when unset). A fast hash is right here, where a password
would need a slow one: guessing a 256-bit random key takes 2^255 tries on average whatever the hash costs, so a slow
hash would only add its cost (~100 ms) to every request. The secret means a copy of the database alone cannot even
test a guess. docs/security.md has the whole argument.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from app.auth.principal import EVERYTHING, Principal, Role
from app.config import Settings
from app.db.models import ApiKey

PREFIX = "mk_"
PREFIX_CHARS = len(PREFIX) + 8  # what `memora key list` shows and the lookup uses
KEY_BYTES = 32
# The HMAC key when MEMORA_API_KEY_SECRET is unset: the hash is then a plain, domain-separated SHA-256.
_DEFAULT_SECRET = b"memora api key v1"
# last_used_at is written at most this often per key, so a busy key does not write a row per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewKey:
    """A key just made: the secret (shown once, never stored) and its row."""

    secret: str
    row: ApiKey


def generate() -> str:
    return PREFIX + secrets.token_urlsafe(KEY_BYTES)


_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def looks_like_key(token: str) -> bool:
    """TOKEN has a key's shape: the prefix, then the URL-safe characters generate() draws, as many."""
    body = token[len(PREFIX) :]
    return token.startswith(PREFIX) and len(token) == PREFIX_CHARS + 35 and set(body) <= _KEY_CHARS


def digest(token: str, settings: Settings) -> bytes:
    """The stored form of TOKEN: HMAC-SHA-256 under the server's secret."""
    secret = settings.api_key_secret.get_secret_value().encode() if settings.api_key_secret else _DEFAULT_SECRET
    return hmac.new(secret, token.encode(), hashlib.sha256).digest()


def create(
    db: Session,
    settings: Settings,
    name: str,
    role: Role,
    *,
    collections: Sequence[str] = EVERYTHING,
    datasets: Sequence[str] = EVERYTHING,
    expires_in: timedelta | None = None,
    rate_limit: int | None = None,
) -> NewKey:
    """Make a key; the caller shows NewKey.secret once. Names are checked by the table (one live key per name)."""
    secret = generate()
    row = ApiKey(
        name=name,
        prefix=secret[:PREFIX_CHARS],
        hash=digest(secret, settings),
        role=role.name,
        collections=list(collections),
        datasets=list(datasets),
        rate_limit=rate_limit,
        expires_at=datetime.now(UTC) + expires_in if expires_in is not None else None,
    )
    db.add(row)
    db.flush()
    return NewKey(secret, row)


# What a lookup reads: plain rows, not ORM objects (half the lookup's time on every request with a key).
_LOOKUP = select(
    ApiKey.id,
    ApiKey.name,
    ApiKey.hash,
    ApiKey.role,
    ApiKey.collections,
    ApiKey.datasets,
    ApiKey.rate_limit,
    ApiKey.expires_at,
    ApiKey.revoked_at,
    ApiKey.last_used_at,
)


def authenticate(db: Session | Connection, settings: Settings, token: str) -> Principal | None:
    """The principal TOKEN stands for, or None when it is no live key (unknown, expired or revoked). Every row with
    the token's prefix is compared, in constant time, so the answer's timing tells nothing about the hash."""
    if not looks_like_key(token):
        return None
    wanted = digest(token, settings)
    rows = db.execute(_LOOKUP.where(ApiKey.prefix == token[:PREFIX_CHARS])).all()
    found = None
    for row in rows:
        if hmac.compare_digest(row.hash, wanted):
            found = row
    if found is None or found.revoked_at is not None:
        return None
    now = datetime.now(UTC)
    if found.expires_at is not None and found.expires_at <= now:
        return None
    if found.last_used_at is None or found.last_used_at < now - LAST_USED_RESOLUTION:
        db.execute(update(ApiKey).where(ApiKey.id == found.id).values(last_used_at=func.now()))
    return principal_of(found)


def principal_of(row: Any) -> Principal:
    """The principal of a key's row: an ApiKey, or a row of its columns."""
    return Principal(
        role=Role[row.role],
        collections=tuple(row.collections),
        datasets=tuple(row.datasets),
        name=row.name,
        key_id=row.id,
        rate_limit=row.rate_limit,
    )


_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_duration(text: str) -> timedelta:
    """How long a new key lives, from "90d", "12h", "30m" or "2w"; a ValueError says what is wrong."""
    number, unit = text[:-1], text[-1:]
    # isdigit() alone takes other scripts' digits and superscripts ("²d", which int() then refuses).
    if unit not in _UNITS or not (number.isascii() and number.isdigit()) or int(number) == 0:
        raise ValueError(f"{text!r} is not a duration: a positive whole number then m, h, d or w (90d)")
    if int(number) > 36_500 * _UNITS["d"] / _UNITS[unit]:
        raise ValueError(f"{text!r} is more than 100 years")
    return int(number) * _UNITS[unit]


def live(db: Session, name: str) -> ApiKey | None:
    """The unrevoked key called NAME (expired or not), or None."""
    return db.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))).one_or_none()


def all_keys(db: Session, *, revoked: bool = False) -> list[ApiKey]:
    """Every key, oldest first; revoked ones only with REVOKED."""
    query = select(ApiKey).order_by(ApiKey.id)
    if not revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(db.scalars(query))


def revoke(db: Session, name: str) -> ApiKey | None:
    """Revoke the live key called NAME (the next request with it is a 401); None when there is none."""
    row = live(db, name)
    if row is not None:
        row.revoked_at = datetime.now(UTC)
        db.flush()
    return row
