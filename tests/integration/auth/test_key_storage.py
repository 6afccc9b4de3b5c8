"""API keys at rest and at the door (app/auth/keys.py): only a keyed hash is stored, every row with the prefix is
compared in constant time, expired and revoked keys are refused, last_used_at is written at most once a minute."""

from __future__ import annotations

import hmac
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.auth import keys
from app.auth.principal import Role
from app.cli import cli
from app.config import Settings
from app.db.embedded import bin_dir
from app.db.models import ApiKey
from tests.conftest import sqlalchemy_engine


def test_a_dump_of_the_database_holds_no_key(fresh_db_url: str) -> None:
    made = []
    for name, role in (("cli-admin", "admin"), ("cli-reader", "read")):
        result = CliRunner().invoke(cli, ["--database-url", fresh_db_url, "key", "create", name, "--role", role])
        assert result.exit_code == 0, result.stderr
        made.append(result.stdout.strip())
    engine = sqlalchemy_engine(fresh_db_url)
    with Session(engine) as db, db.begin():
        made.append(keys.create(db, Settings(database_url=fresh_db_url), "api", Role.write, datasets=["s*"]).secret)
        hashes = [row.hash for row in keys.all_keys(db)]
    engine.dispose()

    dump = subprocess.run([str(bin_dir() / "pg_dump"), "--dbname", fresh_db_url], capture_output=True, text=True,
                          check=True, timeout=120).stdout  # fmt: skip

    # The dump holds the keys' rows (their prefixes and hashes), so the checks below look where a key would be.
    assert len(hashes) == 3
    for secret, digest in zip(made, hashes, strict=True):
        assert secret[: keys.PREFIX_CHARS] in dump
        assert "\\x" + digest.hex() in dump
        assert secret not in dump
        assert secret[keys.PREFIX_CHARS :] not in dump
        assert secret.encode().hex() not in dump


def test_the_secret_changes_the_hash_and_a_key_works_only_under_its_own(db: Session) -> None:
    default, one, other = Settings(), secret("one secret"), secret("another secret")
    made = keys.create(db, one, "svc", Role.read)

    assert made.row.hash == keys.digest(made.secret, one)
    assert keys.digest(made.secret, default) != keys.digest(made.secret, one) != keys.digest(made.secret, other)
    assert keys.authenticate(db, one, made.secret) is not None
    assert keys.authenticate(db, other, made.secret) is None
    assert keys.authenticate(db, default, made.secret) is None


def secret(value: str) -> Settings:
    return Settings(api_key_secret=SecretStr(value))


def test_keys_sharing_a_prefix_each_find_their_own_row_and_every_row_is_compared(
    db: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = keys.create(db, settings, "first", Role.read)
    # A second key with the first one's prefix: a collision of 48 bits, forced.
    twin = first.secret[: keys.PREFIX_CHARS] + keys.generate()[keys.PREFIX_CHARS :]
    db.add(ApiKey(name="twin", prefix=twin[: keys.PREFIX_CHARS], hash=keys.digest(twin, settings), role="admin"))
    db.flush()
    stranger = first.secret[: keys.PREFIX_CHARS] + keys.generate()[keys.PREFIX_CHARS :]
    compared: list[Any] = []
    compare = hmac.compare_digest

    def counted(a: Any, b: Any) -> bool:
        compared.append(a)
        return compare(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", counted)
    found = [keys.authenticate(db, settings, token) for token in (first.secret, twin, stranger)]

    assert [(p.name, p.role) if p else None for p in found] == [("first", Role.read), ("twin", Role.admin), None]
    # No early exit: each lookup compared the token with both rows, whichever matched.
    assert len(compared) == 6


def test_a_key_past_its_expiry_is_refused(db: Session, settings: Settings) -> None:
    made = keys.create(db, settings, "temp", Role.write, expires_in=timedelta(hours=1))
    assert keys.authenticate(db, settings, made.secret) is not None

    made.row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.flush()

    assert keys.authenticate(db, settings, made.secret) is None


def test_a_revoked_key_is_refused_at_once_and_its_name_is_free(db: Session, settings: Settings) -> None:
    old = keys.create(db, settings, "deploy", Role.admin)
    assert keys.authenticate(db, settings, old.secret) is not None

    revoked = keys.revoke(db, "deploy")
    new = keys.create(db, settings, "deploy", Role.read)

    assert revoked is not None
    assert keys.authenticate(db, settings, old.secret) is None
    found = keys.authenticate(db, settings, new.secret)
    assert found is not None
    assert (found.name, found.role, found.key_id) == ("deploy", Role.read, new.row.id)
    assert keys.revoke(db, "nobody") is None


@pytest.mark.parametrize(
    "token",
    ["", "Bearer x", "mk_", "mk_" + "A" * 42, "mk_" + "A" * 44, "xk_" + "A" * 43, "mk_" + "é" * 43],
)
def test_what_is_not_a_key_is_refused_without_a_lookup(db: Session, settings: Settings, token: str) -> None:
    assert keys.authenticate(db, settings, token) is None


def test_last_used_is_written_at_most_once_a_minute(db: Session, settings: Settings) -> None:
    made = keys.create(db, settings, "busy", Role.read)
    assert made.row.last_used_at is None

    def last_used() -> datetime | None:
        db.expire_all()
        return db.get_one(ApiKey, made.row.id).last_used_at

    def set_last_used(moment: datetime) -> None:
        db.execute(update(ApiKey).where(ApiKey.id == made.row.id).values(last_used_at=moment))

    keys.authenticate(db, settings, made.secret)
    first = last_used()
    assert first is not None

    recently = datetime.now(UTC) - keys.LAST_USED_RESOLUTION / 2
    set_last_used(recently)
    keys.authenticate(db, settings, made.secret)
    assert last_used() == recently

    long_ago = datetime.now(UTC) - keys.LAST_USED_RESOLUTION * 2
    set_last_used(long_ago)
    keys.authenticate(db, settings, made.secret)
    assert last_used() == first  # the transaction's now(), written again
