"""Lookups and writes every feature shares: rows found by name (or a 404), names taken (a 409)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session

from app.errors import ConflictError, NotFoundError

Row = TypeVar("Row", bound=DeclarativeBase)


def noun(model: type[DeclarativeBase] | DeclarativeBase) -> str:
    """What users call a row of MODEL in messages: its table's name ("collection", "snapshot")."""
    return str(model.__tablename__).replace("_", " ")


def find_named(
    db: Session, model: type[Row], name: str, *, lock: bool = False, keep: bool = False, within: Any = None
) -> Row | None:
    """The MODEL row called NAME (inside the parent row WITHIN, for names unique per parent), or None."""
    query = select(model).where(model.name == name)  # type: ignore[attr-defined]
    if within is not None:
        query = query.where(getattr(model, f"{within.__tablename__}_id") == within.id)
    if lock:
        query = query.with_for_update()
    elif keep:
        query = query.with_for_update(read=True, key_share=True)
    return db.scalars(query).one_or_none()


def get_named(
    db: Session, model: type[Row], name: str, *, lock: bool = False, keep: bool = False, within: Any = None
) -> Row:
    """The MODEL row called NAME, or a 404 that names what was looked for. LOCK: FOR UPDATE. KEEP: FOR KEY SHARE, so
    a long read that goes back to the row sees it to the end (a delete waits for the transaction; updates do not)."""
    row = find_named(db, model, name, lock=lock, keep=keep, within=within)
    if row is None:
        raise missing(model, name, within=within)
    return row


def missing(model: type[DeclarativeBase], name: str, *, within: Any = None) -> NotFoundError:
    """The 404 for a MODEL row called NAME that is not there; also what a key not granted NAME gets, word for word,
    so that a 404 never tells a key that a name it may not see exists (app/auth/access.py)."""
    absent = f"no {noun(model)} named {name!r}"
    return NotFoundError(absent if within is None else f"{noun(within)} {within.name!r} has {absent}")


def all_named(db: Session, model: type[Row]) -> Sequence[Row]:
    """Every MODEL row, by name."""
    return db.scalars(select(model).order_by(model.name)).all()  # type: ignore[attr-defined]


def add_named(db: Session, row: Row, constraint: str, field: str = "name") -> Row:
    """Insert ROW in a savepoint; a violation of the unique CONSTRAINT on its name is a 409 naming FIELD (the
    request's transaction stays usable), anything else is raised as it is. ROW comes back refreshed."""
    db.add(row)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError as exc:
        if constraint in str(exc.orig):
            taken = f"a {noun(row)} named {row.name!r} exists already"  # type: ignore[attr-defined]
            raise ConflictError(taken, details=[{"field": field, "reason": "is taken"}]) from None
        raise
    db.refresh(row)
    return row
