"""What the benchmarks share: a scratch database, timing, the machine they ran on, tables and JSON."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import migrate
from app.db.embedded import EmbeddedPostgres
from app.db.engine import libpq_url

REPO_ROOT = Path(__file__).resolve().parent.parent
# Wide enough for the tables when the output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 150)


@dataclass
class ScratchDatabase:
    """A migrated database of the benchmark's own: its libpq URL and Settings pointing at it."""

    url: str
    settings: Settings
    server: str


@contextmanager
def scratch_database(prefix: str) -> Iterator[ScratchDatabase]:
    """A new, migrated database on MEMORA_DATABASE_URL's server, else on an embedded server in a temporary
    directory; dropped (and the embedded server stopped) at the end."""
    with _server() as (server_url, server_kind):
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        try:
            with console.status(f"migrating scratch database {name}"):
                settings = Settings(database_url=url)
                migrate.upgrade(settings)
            yield ScratchDatabase(url, settings, server_kind)
        finally:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def _server() -> Iterator[tuple[str, str]]:
    """(libpq URL of a maintenance database, a description of the server)."""
    if url := os.environ.get("MEMORA_DATABASE_URL"):
        yield libpq_url(Settings(database_url=url).database_url or url), "MEMORA_DATABASE_URL"
        return
    with tempfile.TemporaryDirectory(prefix="memora-bench-") as tmp:
        embedded = EmbeddedPostgres(Path(tmp))
        with console.status("starting an embedded PostgreSQL"):
            server = embedded.ensure_running()
        try:
            yield server.url("postgres"), f"embedded PostgreSQL in {tmp}"
        finally:
            embedded.stop()


@dataclass
class Timings:
    """Seconds accumulated per named step, and how often each ran."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Time spent inside a measured span on work that is not part of the measurement (building its input).
    excluded: float = 0.0

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self.calls[name] += 1

    @contextmanager
    def outside(self) -> Iterator[None]:
        """Work to leave out of the measurement it happens inside."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - start

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """FUNCTION, timed under NAME on every call."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.step(name):
                return function(*args, **kwargs)

        return timed

    def as_dict(self) -> dict[str, float]:
        return dict(self.seconds)


@contextmanager
def memora_serve(database_url: str, *flags: str, checkout: Path = REPO_ROOT, **env: str) -> Iterator[str]:
    """`memora serve --no-migrate FLAGS` on DATABASE_URL, on a free loopback port, with ENV added; its base URL once
    /healthz answers 200. Stopped (SIGTERM, then SIGKILL after 30 s) at the end. CHECKOUT: the code to serve (another
    checkout's app/ runs under this one's Python, as `python -m app` imports it from the working directory)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "app", "--log-level", "warning", "serve", "--no-migrate", *flags,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    # The URL (with its password) goes in the environment, not on a command line other users can read.
    server = subprocess.Popen(command, cwd=checkout, env={**os.environ, "MEMORA_DATABASE_URL": database_url, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"memora serve did not come up on port {port}")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def patched(module: Any, name: str, replacement: Any) -> Iterator[None]:
    """Replace MODULE.NAME for the duration (to time a function the code under test calls)."""
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def machine() -> dict[str, Any]:
    """The machine a run measured: CPUs, CPU model, memory, load, Python."""
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def code_version() -> dict[str, Any]:
    """The commit measured, whether app/ had uncommitted changes (the figures belong to that code), and whether the
    whole tree was clean: figures recorded with tree_clean false cannot be traced to a commit."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return {
        "commit": commit,
        "app_modified": bool(git("status", "--porcelain", "app")),
        # Tracked files only: a JSON written by an earlier run and not yet committed does not change the code.
        "tree_clean": commit != "unknown" and not git("status", "--porcelain", "--untracked-files=no"),
    }


def server_facts(url: str) -> dict[str, Any]:
    """The PostgreSQL settings that move the figures: version, pgvector, memory, durability, parallelism."""
    names = (
        "shared_buffers",
        "maintenance_work_mem",
        "max_parallel_maintenance_workers",
        "synchronous_commit",
        "fsync",
        "wal_level",
    )
    with psycopg.connect(url) as conn:
        facts: dict[str, Any] = {
            "server_version": conn.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]
            "pgvector": conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0],  # type: ignore[index]
        }
        for name in names:
            facts[name] = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]  # type: ignore[index]
    return facts


def print_facts(title: str, facts: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in facts.items():
        table.add_row(key, str(value))
    console.print(table)


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A table of figures; numbers right-aligned."""
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    if "machine" in payload:
        # Other work on the machine moves the figures; the load at both ends says whether there was any.
        payload["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.print(f"figures written to {path}")
