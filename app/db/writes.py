"""Writes that share a shape across features."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session

from app.errors import ConflictError

_Row = TypeVar("_Row", bound=DeclarativeBase)


def add_named(db: Session, row: _Row, constraint: str, taken: str) -> _Row:
    """Insert ROW in a savepoint; a violation of the unique CONSTRAINT on its name is a 409 saying TAKEN (the
    request's transaction stays usable), anything else is raised as it is. ROW comes back refreshed."""
    db.add(row)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError as exc:
        if constraint in str(exc.orig):
            raise ConflictError(taken, details={"field": "name"}) from None
        raise
    db.refresh(row)
    return row
