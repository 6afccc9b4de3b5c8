"""`memora key create | list | revoke`: API keys, made on the database directly (app/auth/keys.py).

The key itself is printed once, alone on standard output, so `KEY=$(memora key create ...)` keeps it and nothing
else; what it may do goes to standard error. Only its prefix and a keyed hash are stored (docs/security.md).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.options import json_flag, option, session, settings

if TYPE_CHECKING:
    from app.db.models import ApiKey

cli = typer.Typer(help="API keys: who may call the REST API, and what they may do.", no_args_is_help=True)

# Far above what one key can send (the served API answers tens of searches a second per core), far below the column's
# integer limit.
MAX_RATE_LIMIT = 1_000_000
# The same rule as the table's name_format check (app/db/models/access.py), said before the database says it.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")


@cli.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Key name (letters, digits, '_', '.', '@', '-'; up to 128).")],
    role: Annotated[str, option("KEY_ROLE", "read | write | admin: what the key may do.", "--role")],
    collections: Annotated[str, option("KEY_COLLECTIONS", "Collections the key may see: glob patterns, "
                                       "comma-separated.", "--collections")] = "*",
    datasets: Annotated[str, option("KEY_DATASETS", "Datasets the key may see: glob patterns, comma-separated.",
                                    "--datasets")] = "*",
    expires: Annotated[str | None, option("KEY_EXPIRES", "Lifetime: 30m, 12h, 90d, 2w; unset: no expiry.",
                                          "--expires")] = None,
    rate_limit: Annotated[int | None, option("KEY_RATE_LIMIT", "Requests per minute; unset: "
                                             "MEMORA_RATE_LIMIT_PER_MINUTE.", "--rate-limit")] = None,
) -> None:  # fmt: skip
    """Make a key and print it once: it is stored only as a hash and cannot be shown again."""
    from sqlalchemy.exc import IntegrityError

    from app.auth import keys
    from app.auth.principal import Role
    from app.errors import InvalidInputError

    if not NAME.fullmatch(name):
        raise InvalidInputError.for_field("NAME", "1-128 letters, digits, '_', '.', '@' or '-', starting with a "
                                          "letter or digit")  # fmt: skip
    if role not in Role.__members__:
        raise InvalidInputError.for_field("--role", f"{role!r} is not one of {', '.join(Role.__members__)}")
    granted = {"collections": _patterns("--collections", collections), "datasets": _patterns("--datasets", datasets)}
    try:
        lifetime = keys.parse_duration(expires) if expires is not None else None
    except ValueError as exc:
        raise InvalidInputError.for_field("--expires", str(exc)) from None
    if rate_limit is not None and not 1 <= rate_limit <= MAX_RATE_LIMIT:
        raise InvalidInputError.for_field("--rate-limit", f"1 to {MAX_RATE_LIMIT:,} requests per minute (unset: the "
                                          "server's)")  # fmt: skip
    config = settings(ctx)
    try:
        with session(ctx) as db, db.begin():
            if keys.live(db, name) is not None:
                raise _taken(name)
            made = keys.create(db, config, name, Role[role], expires_in=lifetime, rate_limit=rate_limit, **granted)
            secret, grants = made.secret, _grants(made.row)
    except IntegrityError:  # made by someone else since the check above
        raise _taken(name) from None
    # Printed once committed: a key shown is a key that works.
    typer.echo(secret)
    typer.echo(f"key {name}: {grants}. It is shown once, now: only its hash is stored.", err=True)


def _patterns(flag: str, text: str) -> list[str]:
    from app.errors import InvalidInputError

    patterns = [pattern.strip() for pattern in text.split(",")]
    if not all(patterns):
        raise InvalidInputError.for_field(flag, "an empty pattern (give names or globs, comma-separated; * for all)")
    return patterns


def _taken(name: str) -> Exception:
    from app.errors import ConflictError

    return ConflictError(f"a live key is called {name!r}: revoke it first (memora key revoke {name}) or pick another")


@cli.command("list")
def list_keys(
    ctx: typer.Context,
    every: Annotated[bool, option("KEY_LIST_ALL", "Revoked keys too.", "--all")] = False,
    as_json: Annotated[bool, json_flag("KEY_LIST_JSON")] = False,
) -> None:
    """List keys, oldest first: prefix, name, role, grants, created, expires, last used, state. Never the hash."""
    import json

    from app.auth import keys

    with session(ctx) as db:
        rows = [_described(row) for row in keys.all_keys(db, revoked=every)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    columns = ("prefix", "name", "role", "collections", "datasets", "created_at", "expires_at", "last_used_at",
               "state")  # fmt: skip
    typer.echo("\t".join(column.removesuffix("_at") for column in columns))
    for row in rows:
        typer.echo("\t".join(_cell(row[column]) for column in columns))


def _described(row: ApiKey) -> dict[str, Any]:
    """What `memora key list` says of a key: everything but its hash."""

    def when(moment: datetime | None) -> str | None:
        return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")

    now = datetime.now(UTC)
    state = "revoked" if row.revoked_at else "expired" if row.expires_at and row.expires_at <= now else "live"
    return {
        "prefix": row.prefix,
        "name": row.name,
        "role": row.role,
        "collections": list(row.collections),
        "datasets": list(row.datasets),
        "rate_limit": row.rate_limit,
        "created_at": when(row.created_at),
        "expires_at": when(row.expires_at),
        "last_used_at": when(row.last_used_at),
        "revoked_at": when(row.revoked_at),
        "state": state,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return ",".join(value) if isinstance(value, list) else str(value)


def _grants(row: ApiKey) -> str:
    expiry = "no expiry" if row.expires_at is None else f"expires {row.expires_at.isoformat(timespec='seconds')}"
    limit = "" if row.rate_limit is None else f", {row.rate_limit} requests per minute"
    return (f"role {row.role}, collections {','.join(row.collections)}, datasets {','.join(row.datasets)}, "
            f"{expiry}{limit}")  # fmt: skip


@cli.command("revoke")
def revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Key name.")]) -> None:
    """Revoke a key: the next request made with it is refused; its name is free for a new key."""
    from app.auth import keys
    from app.errors import NotFoundError

    with session(ctx) as db, db.begin():
        row = keys.revoke(db, name)
        if row is None:
            raise NotFoundError(f"no live key is called {name!r} (memora key list)")
        typer.echo(f"revoked {name} ({row.prefix}...)")
