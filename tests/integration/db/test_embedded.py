"""The embedded PostgreSQL: started once per data directory, shared, and clear about what stops it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from app.db.embedded import EmbeddedPostgres, server_major_version, shared_buffers
from app.errors import EmbeddedPostgresError


def test_starts_once_and_is_found_again(data_dir: Path) -> None:
    first = EmbeddedPostgres(data_dir).ensure_running()
    again = EmbeddedPostgres(data_dir).ensure_running()

    assert again == first
    with psycopg.connect(first.url()) as conn:
        version = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
        extension = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        assert version == (server_major_version(),)
        assert extension.fetchone() is not None
    assert (data_dir / "pg.password").stat().st_mode & 0o077 == 0


def test_shared_buffers_is_a_quarter_of_memory_within_bounds(data_dir: Path) -> None:
    assert shared_buffers(24 * 2**30) == "2048MB"
    assert shared_buffers(2 * 2**30) == "512MB"
    assert shared_buffers(256 * 2**20) == "128MB"

    server = EmbeddedPostgres(data_dir).ensure_running()
    with psycopg.connect(server.url()) as conn:
        same = conn.execute(
            "SELECT pg_size_bytes(current_setting('shared_buffers')) = pg_size_bytes(%s)", (shared_buffers(),)
        ).fetchone()

    assert same == (True,)


def test_refuses_connections_without_the_password(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir).ensure_running()

    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://postgres:wrong@127.0.0.1:{server.port}/memora").close()


def test_stop_and_start_again_keeps_the_data(data_dir: Path) -> None:
    embedded = EmbeddedPostgres(data_dir)
    with psycopg.connect(embedded.ensure_running().url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")

    assert embedded.stop() is True
    assert embedded.status() is None
    assert embedded.stop() is False

    with psycopg.connect(embedded.ensure_running().url()) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (7,)


def test_two_processes_on_a_new_data_dir_share_one_server(data_dir: Path) -> None:
    command = [sys.executable, "-m", "app", "--data-dir", str(data_dir), "db", "url"]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    urls = {stdout.strip() for stdout, _ in outputs}
    assert len(urls) == 1
    server = EmbeddedPostgres(data_dir).status()
    assert server is not None
    assert urls == {server.url()}


def test_a_stale_pid_file_is_cleared(data_dir: Path) -> None:
    embedded = EmbeddedPostgres(data_dir)
    embedded.ensure_running()
    embedded.stop()
    # What a crash leaves behind, after the pid went to another program: PostgreSQL alone would refuse to start.
    with subprocess.Popen(["sleep", "60"]) as other_program:
        pid_file = f"{other_program.pid}\n{data_dir / 'pg'}\n0\n5432\n\n\n0 0\nready\n"
        (data_dir / "pg" / "postmaster.pid").write_text(pid_file)
        try:
            server = embedded.ensure_running()
        finally:
            other_program.kill()

    with psycopg.connect(server.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_cluster_of_another_major_version_is_refused_with_advice(data_dir: Path) -> None:
    (data_dir / "pg").mkdir(parents=True)
    (data_dir / "pg" / "PG_VERSION").write_text("16\n")
    (data_dir / "pg.password").write_text("x\n")

    with pytest.raises(EmbeddedPostgresError) as caught:
        EmbeddedPostgres(data_dir).ensure_running()

    message = caught.value.message
    assert "PostgreSQL 16" in message
    assert f"PostgreSQL {server_major_version()}" in message
    assert "MEMORA_DATA_DIR" in message


def test_a_taken_port_is_reported_with_the_setting_to_change(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(EmbeddedPostgresError) as caught:
            EmbeddedPostgres(data_dir, port=port).ensure_running()

    assert f"port {port}" in caught.value.message
    assert "MEMORA_PG_PORT" in caught.value.message


def test_an_unusable_data_dir_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    with pytest.raises(EmbeddedPostgresError, match="MEMORA_DATA_DIR"):
        EmbeddedPostgres(blocker / "memora").ensure_running()


@pytest.mark.skipif(os.geteuid() == 0, reason="root is not stopped by file modes")
def test_a_read_only_data_dir_is_reported(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(EmbeddedPostgresError, match="permission denied"):
            EmbeddedPostgres(tmp_path / "memora").ensure_running()
    finally:
        tmp_path.chmod(0o700)


def test_a_foreign_directory_is_not_overwritten(data_dir: Path) -> None:
    (data_dir / "pg").mkdir(parents=True)
    (data_dir / "pg" / "notes.txt").write_text("mine")

    with pytest.raises(EmbeddedPostgresError, match="not empty"):
        EmbeddedPostgres(data_dir).ensure_running()
    assert (data_dir / "pg" / "notes.txt").read_text() == "mine"


def test_stop_then_url_back_to_back_on_a_fixed_port(data_dir: Path) -> None:
    """Issue 13 case 10: the connections a fast shutdown closes leave the server's port in TIME_WAIT, which must not
    read as "in use by another program" when nothing listens there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")}
    env |= {"MEMORA_DATA_DIR": str(data_dir), "MEMORA_PG_PORT": str(port)}
    embedded = EmbeddedPostgres(data_dir, port=port)
    held = psycopg.connect(embedded.ensure_running().url())  # closed by the server: the server's side lingers
    try:
        stopped = subprocess.run([sys.executable, "-m", "app", "db", "stop"], env=env, capture_output=True, text=True)
        url = subprocess.run([sys.executable, "-m", "app", "db", "url"], env=env, capture_output=True, text=True)
    finally:
        held.close()

    assert stopped.stdout.strip() == "stopped", stopped.stderr
    assert url.returncode == 0, url.stderr
    assert f"@127.0.0.1:{port}/" in url.stdout
    with psycopg.connect(url.stdout.strip()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
