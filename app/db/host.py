"""What the embedded server needs of the machine: the user PostgreSQL runs as, whether a pid is that server,
free ports, the tail of its log, files only their owner reads."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

from app.errors import EmbeddedPostgresError

SERVICE_USER = "memora-postgres"


def service_user() -> pwd.struct_passwd | None:
    """The unprivileged user PostgreSQL runs as when Memora runs as root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedPostgresError(
            f"Memora runs as root, PostgreSQL refuses to, and there is no `useradd` to create the "
            f"{SERVICE_USER} user. Run Memora as an ordinary user, or create that user yourself."
        )
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
         SERVICE_USER],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return pwd.getpwnam(SERVICE_USER)


def is_postgres(pid: int, pgdata: Path) -> bool:
    """Is PID a live PostgreSQL process working in PGDATA (not a pid reused by another program or server)?"""
    if pid <= 0:
        return False
    try:
        if Path(f"/proc/{pid}/cwd").resolve() != pgdata.resolve():
            return False
    except OSError:
        return False
    try:
        # /proc/PID/stat: "PID (COMM) STATE ..."; a zombie (Z) or dead (X) process holds no server.
        head, _, rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
    except OSError:
        return False
    comm = head.partition("(")[2]
    return comm in ("postgres", "postmaster") and rest.split()[0] not in ("Z", "X")


def port_free(port: int) -> bool:
    """Could a server listen on 127.0.0.1:PORT? Bound as PostgreSQL binds it, with SO_REUSEADDR: the connections
    of a server that just stopped linger in TIME_WAIT on its port for a minute, and only a listener takes it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def port_taken(port: int) -> EmbeddedPostgresError:
    return EmbeddedPostgresError(
        f"port {port} on 127.0.0.1 is already in use by another program, so the embedded PostgreSQL cannot "
        "listen there. Set MEMORA_PG_PORT to a free port, or to 0 to let Memora pick one."
    )


def tail(path: Path, offset: int, size: int = 4000) -> str:
    """What the log gained since offset, at most its last size bytes."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(offset, path.stat().st_size - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, from its first byte."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    tmp.replace(path)
