"""A streaming replica of the embedded PostgreSQL (`memora db replica ...`), in a data directory of its own.

    DIR/pg            the standby: pg_basebackup -R of the primary (standby.signal, and primary_conninfo in
                      postgresql.auto.conf), started with the same binaries, on 127.0.0.1
    DIR/pg.password   the superuser's password, the primary's (a physical replica has the primary's roles)
    DIR/pg.pgpass     the same, as the standby's passfile for its replication connection (not on a command line)
    DIR/replica.json  the port it listens on (fixed, so MEMORA_READ_DATABASE_URLS stays right) and the primary's

It streams from the primary without a replication slot: a replica stopped for long enough that the primary has
recycled the WAL it needs cannot catch up and must be made again (its log says "requested WAL segment ... has
already been removed"); a slot would instead keep that WAL on the primary's disk for as long as the replica is gone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from app.db import host
from app.db.embedded import SUPERUSER, EmbeddedPostgres, EmbeddedServer
from app.errors import EmbeddedPostgresError

_CONFIG = "replica.json"
_PASSFILE = "pg.pgpass"
# Appended to the standby's postgresql.auto.conf. hot_standby_feedback: the primary keeps the rows a replica's query
# still reads, so a long search is not cancelled by a conflict with recovery (a little bloat on the primary instead).
_STANDBY_SETTINGS = "hot_standby_feedback = on\n"


@dataclass(frozen=True)
class ReplicaStatus:
    """What `memora db replica status` prints."""

    running: bool
    port: int
    streaming: bool = False
    replayed: str | None = None
    lag_bytes: int | None = None


class EmbeddedReplica(EmbeddedPostgres):
    """A standby in DIR, started, found and stopped as the embedded primary is (pg_ctl, the same lock file)."""

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        super().__init__(data_dir, port)
        config = self.root / _CONFIG
        if not port and config.exists():
            self.port = int(json.loads(config.read_text())["port"])

    @classmethod
    def create(cls, primary: EmbeddedPostgres, directory: Path, port: int = 0) -> EmbeddedReplica:
        """Copy the embedded PRIMARY (started if need be) into DIRECTORY as a standby that streams from it, and
        start it on PORT (0: a free port, kept)."""
        if directory.expanduser().absolute() == primary.root:
            raise EmbeddedPostgresError(f"{directory} is the primary's own data directory; name another one")
        return cls.copy_of(primary.ensure_running(), directory, port)

    @classmethod
    def copy_of(cls, server: EmbeddedServer, directory: Path, port: int = 0) -> EmbeddedReplica:
        """A standby of SERVER (a PostgreSQL on loopback whose superuser may replicate) in DIRECTORY, started."""
        replica = cls(directory, port or host.free_port())
        if (replica.pgdata / "PG_VERSION").exists() or (replica.root / _CONFIG).exists():
            raise EmbeddedPostgresError(
                f"{replica.root} already holds a replica; start it with `memora db replica start {directory}`, or "
                "remove the directory to make a new one"
            )
        replica._make_root()
        with replica._locked():
            if replica.pgdata.exists() and any(replica.pgdata.iterdir()):
                raise EmbeddedPostgresError(f"{replica.pgdata} exists and is not empty; name another directory")
            replica._make_pgdata()
            host.write_private(replica.password_path, server.password)
            replica._write_passfile(server.password)
            replica._base_backup(server)
            with (replica.pgdata / "postgresql.auto.conf").open("a") as conf:
                conf.write(_STANDBY_SETTINGS)
            host.write_private(replica.root / _CONFIG, json.dumps({"port": replica.port, "primary": server.port}))
        replica.ensure_running()
        return replica

    def _make_pgdata(self) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        owner = host.service_user()
        if owner is not None:
            self._make_reachable(owner)
            os.chown(self.pgdata, owner.pw_uid, owner.pw_gid)

    def _write_passfile(self, password: str) -> None:
        escaped = password.replace("\\", "\\\\").replace(":", "\\:")
        passfile = self.root / _PASSFILE
        host.write_private(passfile, f"127.0.0.1:*:*:{SUPERUSER}:{escaped}\n")  # any port: the primary's may change
        if (owner := host.service_user()) is not None:
            os.chown(passfile, owner.pw_uid, owner.pw_gid)

    def _conninfo(self, primary_port: int) -> str:
        """The replication connection to the primary on PRIMARY_PORT, its password read from the passfile."""
        return (
            f"host=127.0.0.1 port={primary_port} user={SUPERUSER} passfile={self.root / _PASSFILE} "
            f"application_name=memora-replica-{self.port}"
        )

    def _base_backup(self, primary: EmbeddedServer) -> None:
        """pg_basebackup over a replication connection to the primary on loopback; -R writes standby.signal and the
        primary_conninfo that streaming needs (with the passfile, so no password is on a command line or in it)."""
        self._run(
            "pg_basebackup",
            "-D",
            str(self.pgdata),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-d",
            self._conninfo(primary.port),
        )

    def follow(self, primary: EmbeddedServer) -> EmbeddedServer:
        """Start the standby if need be, streaming from PRIMARY where it runs now: the embedded primary takes a new
        port at each start unless MEMORA_PG_PORT fixes one, and a standby left pointing at the old one waits for WAL
        for ever. primary_conninfo is reloadable, so a running standby follows without a restart."""
        import psycopg
        from psycopg import sql

        server = self.ensure_running()
        with psycopg.connect(server.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SHOW primary_conninfo").fetchone()
            if row is None or f"port={primary.port} " not in f"{row[0]} ":
                setting = sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(
                    sql.Literal(self._conninfo(primary.port))
                )
                conn.execute(setting)
                conn.execute("SELECT pg_reload_conf()")
        return server

    def _ensure_database(self, server: EmbeddedServer) -> None:
        """Nothing: a standby is read only, and the primary's databases are replicated to it."""

    def describe(self, primary: EmbeddedServer | None) -> ReplicaStatus:
        """Whether it runs and streams, what it has replayed, and how far it trails PRIMARY (when running)."""
        import psycopg

        server = self.status()
        if server is None:
            return ReplicaStatus(running=False, port=self.port)
        with psycopg.connect(server.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            replayed, streaming = conn.execute(
                "SELECT pg_last_wal_replay_lsn(), EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')"
            ).fetchone() or (None, False)
        lag_bytes: int | None = None
        if primary is not None:
            with psycopg.connect(primary.url("postgres"), autocommit=True, connect_timeout=5) as conn:
                behind = "SELECT greatest(pg_current_wal_lsn() - %s::pg_lsn, 0)::bigint"
                row = conn.execute(behind, (replayed,)).fetchone()
                lag_bytes = int(row[0]) if row else None
        return ReplicaStatus(
            running=True,
            port=server.port,
            streaming=bool(streaming),
            replayed=str(replayed),
            lag_bytes=lag_bytes,
        )
