"""What `memora serve` checks about access before it serves: a server that needs keys must have an admin key, and
a server open to others says so at every start."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from app.auth.mode import keys_required, open_to_others
from app.config import Settings
from app.db.models import ApiKey
from app.errors import AppError

log = logging.getLogger("app.auth")

HOW_TO_MAKE_ONE = "make one with `memora key create NAME --role admin`"


def check_serve(settings: Settings) -> None:
    """Refuse to serve where keys are required and no live admin key exists (nobody could manage the server, and
    every request would be a 401); warn where MEMORA_AUTH=off leaves a reachable server open."""
    if open_to_others(settings):
        log.warning(
            "MEMORA_AUTH=off on %s, an address others can reach: anyone who reaches the port may read, change and "
            "delete everything (docs/security.md)",
            settings.host,
        )
    if not keys_required(settings):
        return
    from sqlalchemy.exc import ProgrammingError

    from app.db.engine import make_engine

    engine = make_engine(settings, "cli")
    try:
        with Session(engine) as db:
            found = has_admin_key(db)
    except ProgrammingError as exc:  # no api_key table: --no-migrate on a database migrations have not reached
        raise AppError(
            "cannot look for an admin key: the database is not migrated (run `memora db upgrade`, or serve without "
            f"--no-migrate): {str(exc.orig).strip().splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()
    if not found:
        why = "MEMORA_AUTH=required" if settings.auth == "required" else f"{settings.host} is not a loopback address"
        raise AppError(
            f"API keys are required ({why}) and there is no live admin key: {HOW_TO_MAKE_ONE}, "
            "or set MEMORA_AUTH=off to serve without keys"
        )


def has_admin_key(db: Session) -> bool:
    """True when an admin key is neither revoked nor expired."""
    now = datetime.now(UTC)
    live = select(ApiKey.id).where(
        ApiKey.role == "admin", ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)
    )
    return bool(db.scalar(select(exists(live))))
