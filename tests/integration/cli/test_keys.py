"""`memora key create | list | revoke` on a database of the test's own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import psycopg
import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.auth import keys
from app.auth.principal import Principal, Role
from app.cli import cli
from app.config import Settings
from tests.conftest import sqlalchemy_engine

runner = CliRunner()
KEY = re.compile(r"mk_[A-Za-z0-9_-]{43}")


def key(url: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`memora key ARGS` in this process: (exit code, stdout, stderr)."""
    result = runner.invoke(cli, ["--database-url", url, "key", *args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def memora_key(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`memora key ARGS` through the real entry point, in a new process (errors become one line there)."""
    env = {**os.environ, "MEMORA_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "app", "key", *args], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip


def principal(url: str, token: str, settings: Settings | None = None) -> Principal | None:
    engine = sqlalchemy_engine(url)
    try:
        with Session(engine) as db, db.begin():
            return keys.authenticate(db, settings or Settings(database_url=url), token)
    finally:
        engine.dispose()


def test_create_prints_the_key_alone_and_what_it_may_do_on_stderr(fresh_db_url: str) -> None:
    code, out, err = key(fresh_db_url, "create", "ci", "--role", "read", "--collections", "docs, team-*",
                         "--datasets", "support", "--expires", "90d", "--rate-limit", "30")  # fmt: skip

    assert code == 0, err
    assert KEY.fullmatch(out.removesuffix("\n")), out
    assert re.fullmatch(
        r"key ci: role read, collections docs,team-\*, datasets support, "
        r"expires 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00, 30 requests per minute\. "
        r"It is shown once, now: only its hash is stored\.\n",
        err,
    ), err
    found = principal(fresh_db_url, out.strip())
    assert found is not None
    assert (found.name, found.role, found.collections, found.datasets, found.rate_limit) == (
        "ci", Role.read, ("docs", "team-*"), ("support",), 30
    )  # fmt: skip


def test_a_key_made_without_grants_sees_everything_and_never_expires(fresh_db_url: str) -> None:
    code, out, err = key(fresh_db_url, "create", "ops", "--role", "admin")

    assert code == 0
    assert "role admin, collections *, datasets *, no expiry." in err
    found = principal(fresh_db_url, out.strip())
    assert found is not None
    assert found.unrestricted
    assert found.role is Role.admin


def test_list_shows_every_live_key_and_never_the_hash(fresh_db_url: str) -> None:
    made = {name: key(fresh_db_url, "create", name, "--role", role)[1].strip()
            for name, role in (("alice", "write"), ("bob", "read"), ("carol", "admin"))}  # fmt: skip
    key(fresh_db_url, "revoke", "bob")
    principal(fresh_db_url, made["carol"])  # sets carol's last_used_at

    _, text, _ = key(fresh_db_url, "list")
    _, every, _ = key(fresh_db_url, "list", "--all")
    _, listed, _ = key(fresh_db_url, "list", "--all", "--json")

    header, *lines = text.splitlines()
    assert header == "prefix\tname\trole\tcollections\tdatasets\tcreated\texpires\tlast_used\tstate"
    assert [line.split("\t")[:5] for line in lines] == [
        [made["alice"][:11], "alice", "write", "*", "*"],
        [made["carol"][:11], "carol", "admin", "*", "*"],
    ]
    assert lines[0].split("\t")[6:] == ["-", "-", "live"]
    assert lines[1].split("\t")[7].startswith("20")
    assert [line.split("\t")[1::7] for line in every.splitlines()[1:]] == [
        ["alice", "live"], ["bob", "revoked"], ["carol", "live"]
    ]  # fmt: skip
    rows = json.loads(listed)
    assert [row["name"] for row in rows] == ["alice", "bob", "carol"]
    assert set(rows[0]) == {"prefix", "name", "role", "collections", "datasets", "rate_limit", "created_at",
                            "expires_at", "last_used_at", "revoked_at", "state"}  # fmt: skip
    assert rows[1]["revoked_at"] is not None
    for secret in made.values():
        assert secret[11:] not in text + every + listed


def test_an_expired_key_is_listed_as_such_and_keeps_its_name_until_revoked(fresh_db_url: str) -> None:
    secret = key(fresh_db_url, "create", "temp", "--role", "read", "--expires", "1m")[1].strip()
    engine = sqlalchemy_engine(fresh_db_url)
    with Session(engine) as db, db.begin():
        row = keys.live(db, "temp")
        assert row is not None
        row.expires_at = row.created_at
    engine.dispose()

    _, listed, _ = key(fresh_db_url, "list", "--json")
    again = memora_key(fresh_db_url, "create", "temp", "--role", "read")

    assert [(row["name"], row["state"]) for row in json.loads(listed)] == [("temp", "expired")]
    assert principal(fresh_db_url, secret) is None
    assert again.returncode == 1
    assert key(fresh_db_url, "revoke", "temp")[0] == 0
    assert key(fresh_db_url, "create", "temp", "--role", "read")[0] == 0


def test_revoke_refuses_the_key_at_once_and_frees_its_name(fresh_db_url: str) -> None:
    old = key(fresh_db_url, "create", "deploy", "--role", "write")[1].strip()
    assert principal(fresh_db_url, old) is not None

    code, out, _ = key(fresh_db_url, "revoke", "deploy")
    new = key(fresh_db_url, "create", "deploy", "--role", "read")[1].strip()

    assert code == 0
    assert out == f"revoked deploy ({old[:11]}...)\n"
    assert principal(fresh_db_url, old) is None
    found = principal(fresh_db_url, new)
    assert found is not None
    assert found.role is Role.read


def test_the_key_is_hashed_under_the_secret_of_the_environment(fresh_db_url: str) -> None:
    env = {"MEMORA_API_KEY_SECRET": "a secret kept out of the database"}
    secret = key(fresh_db_url, "create", "svc", "--role", "read", env=env)[1].strip()

    assert principal(fresh_db_url, secret) is None
    assert principal(fresh_db_url, secret, Settings(database_url=fresh_db_url, **env_settings(env))) is not None


def env_settings(env: dict[str, str]) -> dict[str, str]:
    return {name.removeprefix("MEMORA_").lower(): value for name, value in env.items()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "taken", "--role", "read"), "error: a live key is called 'taken': revoke it first "
         "(memora key revoke taken) or pick another"),
        (("create", "x", "--role", "owner"), "error: --role: 'owner' is not one of read, write, admin"),
        (("create", "x", "--role", "read", "--expires", "90"), "error: --expires: '90' is not a duration: a positive "
         "whole number then m, h, d or w (90d)"),
        (("create", "x", "--role", "read", "--expires", "200y"), "error: --expires: '200y' is not a duration: a "
         "positive whole number then m, h, d or w (90d)"),
        (("create", "x", "--role", "read", "--collections", "docs,,wiki"), "error: --collections: an empty pattern "
         "(give names or globs, comma-separated; * for all)"),
        (("create", "x", "--role", "read", "--datasets", ""), "error: --datasets: an empty pattern (give names or "
         "globs, comma-separated; * for all)"),
        (("create", "x", "--role", "read", "--rate-limit", "0"), "error: --rate-limit: 1 to 1,000,000 requests per "
         "minute (unset: the server's)"),
        (("create", "x", "--role", "read", "--rate-limit", "99999999999"), "error: --rate-limit: 1 to 1,000,000 "
         "requests per minute (unset: the server's)"),
        (("create", "bad name", "--role", "read"), "error: NAME: 1-128 letters, digits, '_', '.', '@' or '-', "
         "starting with a letter or digit"),
        (("revoke", "nobody"), "error: no live key is called 'nobody' (memora key list)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_no_key(fresh_db_url: str, args: tuple[str, ...], message: str) -> None:
    assert key(fresh_db_url, "create", "taken", "--role", "admin")[0] == 0

    result = memora_key(fresh_db_url, *args)

    assert result.returncode == 1
    assert result.stderr == message + "\n"
    assert result.stdout == ""
    _, listed, _ = key(fresh_db_url, "list", "--all", "--json")
    assert [row["name"] for row in json.loads(listed)] == ["taken"]


def test_the_key_is_in_no_log_line_even_at_debug_level(fresh_db_url: str) -> None:
    env = {**os.environ, "MEMORA_DATABASE_URL": fresh_db_url, "MEMORA_LOG_LEVEL": "debug"}
    result = subprocess.run([sys.executable, "-m", "app", "key", "create", "dbg", "--role", "read"],
                            capture_output=True, text=True, env=env, timeout=120)  # fmt: skip

    secret = result.stdout.strip()
    assert result.returncode == 0, result.stderr
    assert KEY.fullmatch(secret)
    assert secret[keys.PREFIX_CHARS :] not in result.stderr
    assert result.stderr.startswith("key dbg: role read")


def test_a_name_taken_while_the_command_runs_is_the_same_one_line(fresh_db_url: str) -> None:
    # Another process makes "race" and has not committed: the command's check does not see it, its INSERT waits on
    # the unique index, then fails when the other commits.
    engine = sqlalchemy_engine(fresh_db_url)
    other = Session(engine)
    keys.create(other, Settings(database_url=fresh_db_url), "race", Role.read)
    command = subprocess.Popen([sys.executable, "-m", "app", "key", "create", "race", "--role", "admin"],
                               env={**os.environ, "MEMORA_DATABASE_URL": fresh_db_url}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        blocked = wait_for_a_blocked_cli_backend(fresh_db_url, command)
    finally:
        other.commit()
        other.close()
        engine.dispose()
        out, err = command.communicate(timeout=120)

    assert blocked, err
    assert command.returncode == 1
    assert (out, err) == ("", "error: a live key is called 'race': revoke it first (memora key revoke race) or pick "
                          "another\n")  # fmt: skip


def wait_for_a_blocked_cli_backend(url: str, command: subprocess.Popen[str]) -> bool:
    """True once a backend of the memora command waits for a lock; False if the command ends first."""
    deadline = time.monotonic() + 120
    with psycopg.connect(url, autocommit=True) as conn:
        while command.poll() is None and time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'memora-cli' AND wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0]:
                return True
            time.sleep(0.05)  # poll interval while the command runs
    return False
