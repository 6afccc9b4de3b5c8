"""`memora db replica create|status|stop|start` on the embedded server: a streaming replica on loopback that the
service's own role can read through, as the printed MEMORA_READ_DATABASE_URLS entry says."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.db.embedded import EmbeddedPostgres
from app.db.embedded_replica import EmbeddedReplica

runner = CliRunner()
pytestmark = pytest.mark.one_schema


@pytest.mark.slow
def test_a_replica_is_made_streams_stops_and_starts_again(data_dir: Path, tmp_path: Path) -> None:
    replica_dir = tmp_path / "replica"
    base = ["--data-dir", str(data_dir), "db"]
    try:
        assert runner.invoke(cli, [*base, "upgrade"]).exit_code == 0
        created = runner.invoke(cli, [*base, "replica", "create", str(replica_dir)])
        assert created.exit_code == 0, created.output
        url = created.output.split("MEMORA_READ_DATABASE_URLS=")[1].strip()
        assert url.startswith("postgresql://memora_app:")  # the service's role, not the superuser

        primary = runner.invoke(cli, [*base, "url", "--superuser"]).output.strip()
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.written_on_the_primary (n int)")
            conn.execute("INSERT INTO public.written_on_the_primary VALUES (42)")
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 30
            while not conn.execute("SELECT to_regclass('public.written_on_the_primary')").fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO public.written_on_the_primary VALUES (1)")

        status = runner.invoke(cli, [*base, "replica", "status", "--json", str(replica_dir)])
        described = json.loads(status.output)
        assert described["running"]
        assert described["streaming"]
        assert described["port"] == int(url.split(":")[-1].split("/")[0])

        assert runner.invoke(cli, [*base, "replica", "stop", str(replica_dir)]).output.strip() == "stopped"
        stopped = runner.invoke(cli, [*base, "replica", "status", str(replica_dir)])
        assert stopped.exit_code == 3
        assert "stopped" in stopped.output

        again = runner.invoke(cli, [*base, "replica", "create", str(replica_dir)])
        assert again.exit_code != 0
        assert "already holds a replica" in str(again.exception)

        assert "password" not in (replica_dir / "pg" / "postgresql.auto.conf").read_text()  # a passfile holds it

        # The primary comes back on another port (MEMORA_PG_PORT=0): start points the replica at it.
        old_port = EmbeddedPostgres(data_dir).status()
        assert old_port is not None
        assert runner.invoke(cli, [*base, "stop"]).exit_code == 0
        with socket.create_server(("127.0.0.1", old_port.port)):  # held, so the primary must take another
            started = runner.invoke(cli, [*base, "replica", "start", str(replica_dir)])
        assert started.exit_code == 0, started.output
        assert f"port {described['port']}" in started.output  # the same port: the URL stays right
        primary_now = EmbeddedPostgres(data_dir).status()
        assert primary_now is not None
        assert primary_now.port != old_port.port
        deadline = time.monotonic() + 30
        while not json.loads(runner.invoke(cli, [*base, "replica", "status", "--json", str(replica_dir)]).output)[
            "streaming"
        ]:
            assert time.monotonic() < deadline, "the replica did not stream from the primary's new port"
            time.sleep(0.2)
    finally:
        EmbeddedReplica(replica_dir).stop()


def test_replicas_of_a_server_memora_does_not_run_are_the_operators(tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["--database-url", "postgresql://u@127.0.0.1:9/db", "db", "replica", "create", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert "pg_basebackup -R" in result.output
