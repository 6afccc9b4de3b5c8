"""Supervision of the embedded PostgreSQL by `memora serve`: a server that crashed (or was stopped) is started again.

The API and the worker need the server; nothing else would start it while they run (other memora commands start
it only when they run themselves). A server stopped on purpose with `memora db stop` while `memora serve` runs is
started again too: to stop the database, stop `memora serve` first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.config import Settings
from app.db.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
MAX_BACKOFF_S = 30.0


class Supervisor:
    """A thread that checks every INTERVAL seconds that the server runs, and starts it when it does not; after a
    failed start it waits twice as long each time (up to MAX_BACKOFF_S), and the interval again once it runs."""

    def __init__(self, server: EmbeddedPostgres, interval: float = CHECK_INTERVAL_S) -> None:
        self.server = server
        self.interval = interval
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="memora-pg-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the server keeps running, as it does after any memora command)."""
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        failures = 0
        delay = self.interval
        while not self._stop.wait(delay):
            try:
                if self.server.status() is None:
                    self._restart()
                failures = 0
                delay = self.interval
            except Exception as exc:
                failures += 1
                delay = min(MAX_BACKOFF_S, self.interval * 2**failures)
                log.error("could not start the embedded PostgreSQL in %s: %s; next try in %.0fs",
                          self.server.pgdata, exc, delay)  # fmt: skip

    def _restart(self) -> None:
        log.warning("the embedded PostgreSQL in %s is not running; starting it again", self.server.pgdata)
        running = self.server.ensure_running()
        self.restarts += 1
        log.warning("the embedded PostgreSQL runs again on 127.0.0.1:%s (pid %s)", running.port, running.pid)


@contextmanager
def supervised(settings: Settings) -> Iterator[Supervisor | None]:
    """Supervise the embedded server for the duration (nothing to supervise when MEMORA_DATABASE_URL is set)."""
    if not settings.embedded:
        yield None
        return
    supervisor = Supervisor(EmbeddedPostgres(settings.data_dir, settings.pg_port))
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop()
