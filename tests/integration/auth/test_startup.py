"""The checks `memora serve` makes before serving (app/auth/startup.py), for each mode and the keys present."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from app.auth import keys
from app.auth.principal import Role
from app.auth.startup import check_serve, has_admin_key
from app.config import Settings
from app.errors import AppError


def test_a_reachable_address_needs_an_admin_key(fresh_db_url: str) -> None:
    with pytest.raises(AppError) as refused:
        check_serve(Settings(database_url=fresh_db_url, host="192.0.2.1"))

    assert "(192.0.2.1 is not a loopback address)" in refused.value.message
    assert "`memora key create NAME --role admin`" in refused.value.message


def test_loopback_and_auth_off_need_no_key(fresh_db_url: str) -> None:
    check_serve(Settings(database_url=fresh_db_url, host="127.0.0.1"))
    check_serve(Settings(database_url=fresh_db_url, host="192.0.2.1", auth="off"))


def test_auth_off_on_a_reachable_address_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="app.auth"):
        check_serve(Settings(database_url="postgresql://nobody@127.0.0.1:9/unused", host="0.0.0.0", auth="off"))
        check_serve(Settings(database_url="postgresql://nobody@127.0.0.1:9/unused", host="127.0.0.1", auth="off"))

    assert [r.message.split(",")[0] for r in caplog.records] == ["MEMORA_AUTH=off on 0.0.0.0"]


def test_only_a_live_admin_key_counts(db: Session, settings: Settings) -> None:
    keys.create(db, settings, "reader", Role.read)
    keys.create(db, settings, "old", Role.admin).row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    keys.create(db, settings, "gone", Role.admin)
    keys.revoke(db, "gone")
    db.flush()
    assert not has_admin_key(db)

    keys.create(db, settings, "root", Role.admin, expires_in=timedelta(days=1))
    db.flush()
    assert has_admin_key(db)


def test_an_unmigrated_database_says_so(empty_db_url: str) -> None:
    with pytest.raises(AppError) as refused:
        check_serve(Settings(database_url=empty_db_url, auth="required"))

    assert refused.value.message.startswith("cannot look for an admin key: the database is not migrated")
