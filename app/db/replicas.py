"""Read replicas (MEMORA_READ_DATABASE_URLS): which of them may serve a read now, and how far each has replayed.

A checker thread asks each replica, every MEMORA_REPLICA_CHECK_SECONDS, whether it is a standby of this primary (in
recovery, with the primary's system identifier) and how far it has replayed the primary's WAL. Lag is time: how
long the replica has been missing WAL that the primary had written, read off the primary's positions sampled at the
past checks. A replica of an idle primary has no lag, however old its last replayed transaction is.

A replica that cannot be reached, is not a standby of this primary, or lags more than MEMORA_MAX_REPLICA_LAG is
skipped until a check finds it fit again; with none fit, reads go to the primary. A request that finds a replica gone
marks it down at once (`failed`), without waiting for the next check.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from app.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

LSN_PATTERN = r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"
_LSN = re.compile(LSN_PATTERN)

State = Literal["ok", "lagging", "down", "not_a_replica", "unchecked"]

# What a check reads: on the primary, where its WAL ends; on a replica, whether it is a standby and how far it has
# replayed. The system identifier (pg_control_system, where the role may call it) tells a standby of this primary
# from a standby of another server.
_PRIMARY = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
_REPLICA = "SELECT pg_is_in_recovery(), COALESCE(pg_last_wal_replay_lsn() - '0/0'::pg_lsn, 0)"
_MAY_READ_SYSTEM = "SELECT has_function_privilege('pg_control_system()', 'EXECUTE')"
_SYSTEM = "SELECT (pg_control_system()).system_identifier"
REPLAYED = "SELECT COALESCE(pg_last_wal_replay_lsn() - '0/0'::pg_lsn, 0)"


def parse_lsn(text: str) -> int:
    """'16/B374D848' -> the WAL position as one number; ValueError for anything else."""
    if not _LSN.match(text):
        raise ValueError("must be a WAL position such as 0/16B3748 (pg_current_wal_lsn)")
    high, low = text.split("/")
    return int(high, 16) << 32 | int(low, 16)


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


@dataclass(frozen=True, slots=True)
class ReplicaHealth:
    """One replica as the last check (or a failed request) found it."""

    name: str
    state: State
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    replayed: str | None = None
    error: str | None = None


class Replica:
    """One read replica: its engine and sessions, and what is known of it."""

    def __init__(self, settings: Settings, url: str) -> None:
        from sqlalchemy.engine import make_url

        from app.db.engine import make_engine, make_session_factory

        parsed = make_url(url)
        self.name = f"{parsed.host}:{parsed.port or 5432}"
        if "connect_timeout" not in parsed.query:  # a replica that does not answer must not hold up a request long
            url = parsed.update_query_dict({"connect_timeout": "3"}).render_as_string(hide_password=False)
        self.engine: Engine = make_engine(settings, "api-read", url=url)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self.health = ReplicaHealth(self.name, "unchecked")
        self.replayed = 0  # the WAL position it had replayed when last asked

    def failed(self, exc: BaseException) -> None:
        """A request could not use it: skip it until a check finds it fit again."""
        self.health = ReplicaHealth(self.name, "down", error=_reason(exc))
        self.replayed = 0  # a standby that crashed may come back having replayed less


class ReadReplicas:
    """The replicas of one process, checked in a thread of their own; `candidates` orders the fit ones for a read."""

    def __init__(self, settings: Settings, primary: Engine) -> None:
        self.settings = settings
        self.primary = primary
        self.replicas = [Replica(settings, url) for url in settings.read_database_urls]
        # The primary's WAL end at past checks, (monotonic time, position), kept for twice the lag allowed.
        self._positions: deque[tuple[float, int]] = deque()
        self._turn = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Check once now (so the first requests already use the replicas), then every replica_check_seconds."""
        try:
            self.check()
        except Exception:  # the primary is not up yet: the requests will say so, and the thread checks again
            log.exception("checking the read replicas failed")
        self._thread = threading.Thread(target=self._run, name="memora-replica-check", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)  # a check waits at most a connect timeout per replica
        for replica in self.replicas:
            replica.engine.dispose()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.replica_check_seconds):
            try:
                self.check()
            except Exception:  # the primary is down or restarting: the requests say so; keep checking
                log.exception("checking the read replicas failed")

    def check(self) -> None:
        """Read the primary's WAL end, then each replica's replay position, and judge each replica."""
        from sqlalchemy import text

        with self.primary.connect() as conn:
            position = conn.execute(text(_PRIMARY)).scalar_one()
            system = _system(conn)
        now = time.monotonic()
        self._positions.append((now, int(position)))
        while self._positions and self._positions[0][0] < now - 2 * self.settings.max_replica_lag - 1:
            self._positions.popleft()
        for replica in self.replicas:
            replica.health = self._judge(replica, int(position), system)

    def _judge(self, replica: Replica, position: int, system: int | None) -> ReplicaHealth:
        from sqlalchemy import text

        try:
            with replica.engine.connect() as conn:
                recovering, replayed = conn.execute(text(_REPLICA)).one()
                replica_system = _system(conn)
        except Exception as exc:
            replica.replayed = 0
            return ReplicaHealth(replica.name, "down", error=_reason(exc))
        if not recovering or (None not in (system, replica_system) and replica_system != system):
            why = "it is not in recovery" if not recovering else "it replicates another server"
            return ReplicaHealth(replica.name, "not_a_replica", error=f"not a streaming replica of the primary: {why}")
        replica.replayed = int(replayed)
        lag = self.lag(replica.replayed)
        # Fit only when known to be: it has replayed a position the primary had at a sampled time, so its lag is
        # measured, not just bounded from below (at the first check, a replica behind the one sample is not yet).
        known = bool(self._positions) and self._positions[0][1] <= replica.replayed
        state: State = "ok" if known and lag <= self.settings.max_replica_lag else "lagging"
        return ReplicaHealth(
            replica.name,
            state,
            lag_seconds=round(lag, 3),
            lag_bytes=max(position - replica.replayed, 0),
            replayed=format_lsn(replica.replayed),
        )

    def lag(self, replayed: int) -> float:
        """Seconds since the primary first had WAL past REPLAYED, by the sampled positions; 0 when it had none."""
        now = time.monotonic()
        for at, position in self._positions:
            if position > replayed:
                return now - at
        return 0.0

    def candidates(self, after: int | None = None) -> Iterator[tuple[Replica, bool]]:
        """The fit replicas, a different one first each time, each with whether it must be asked if it has replayed
        AFTER (True) or is known to have (False). Those known to have come first."""
        fit = [replica for replica in self.replicas if replica.health.state == "ok"]
        if not fit:
            return
        start = next(self._turn) % len(fit)
        turn = fit[start:] + fit[:start]
        if after is None:
            yield from ((replica, False) for replica in turn)
            return
        yield from ((replica, False) for replica in turn if replica.replayed >= after)
        yield from ((replica, True) for replica in turn if replica.replayed < after)

    def health(self) -> list[ReplicaHealth]:
        return [replica.health for replica in self.replicas]


def _system(conn: Connection) -> int | None:
    """The server's system identifier, or None where this role may not read it."""
    from sqlalchemy import text

    if not conn.execute(text(_MAY_READ_SYSTEM)).scalar_one():
        return None
    return int(conn.execute(text(_SYSTEM)).scalar_one())


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0] if str(orig or exc).strip() else type(exc).__name__
