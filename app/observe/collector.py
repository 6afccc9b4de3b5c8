"""What /metrics reads at scrape time: the queue and the leases from the database, and the connection pools.

A scrape must answer when the database does not: the collector connects on a connection of its own (outside the
API's pool, which may be exhausted by the very requests the operator wants to see) with a 2 s connect timeout and a
5 s statement timeout (Prometheus gives a scrape 10 s), and reports memora_database_up 0 instead of the database's
figures when that fails. The read is one grouped scan of memora.document: 0.15 s for 100,000 documents and 0.55 s
for 1,000,000 on a busy 2-core machine (benchmarks/observe_scrape.py); memora_database_read_seconds shows it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.db.models import DOCUMENT_STATUSES
from app.errors import AppError

if TYPE_CHECKING:
    from prometheus_client import Metric
    from sqlalchemy import Engine

    from app.config import Settings
    from app.observe.repository import QueueRow

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 2
STATEMENT_TIMEOUT_MS = 5000


class DatabaseCollector(Collector):
    """The queue by status, leases held and expired, the oldest pending wait, and whether the database answered."""

    def __init__(self, settings: Settings, engine: Callable[[], Engine | None]) -> None:
        self.settings = settings
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        from sqlalchemy.exc import SQLAlchemyError

        up = GaugeMetricFamily("memora_database_up", "1 if this scrape could read the database, else 0.")
        started = time.perf_counter()
        try:
            rows = self._read()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("metrics could not read the database: %s", str(getattr(exc, "orig", None) or exc).strip())
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if rows is None:
            return
        yield GaugeMetricFamily(
            "memora_database_read_seconds",
            "How long this scrape took to read the queue from the database.",
            value=time.perf_counter() - started,
        )
        documents = GaugeMetricFamily(
            "memora_documents", "Documents by status; pending and processing are the queue.", labels=["status"]
        )
        counts = dict.fromkeys(DOCUMENT_STATUSES, 0)
        for row in rows:
            counts[row.status] = counts.get(row.status, 0) + row.documents
        for status, count in counts.items():
            documents.add_metric([status], count)
        yield documents
        leases = GaugeMetricFamily(
            "memora_leases",
            "Documents held by a worker: held (lease running), expired (its worker died or is late; the next claim "
            "takes it over).",
            labels=["state"],
        )
        leases.add_metric(["held"], sum(row.leases_held for row in rows))
        leases.add_metric(["expired"], sum(row.leases_expired for row in rows))
        yield leases
        waits = [row.oldest_pending_seconds for row in rows if row.oldest_pending_seconds is not None]
        yield GaugeMetricFamily(
            "memora_queue_oldest_pending_seconds",
            "How long the pending document that has waited longest has waited (0 with none pending).",
            value=max(waits, default=0.0),
        )

    def _read(self) -> list[QueueRow] | None:
        from sqlalchemy import text
        from sqlalchemy.pool import NullPool

        from app.db.engine import make_engine
        from app.observe import repository

        engine = self.engine()
        if engine is None:  # the app has not started
            return None
        url = engine.url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_SECONDS)})
        own = make_engine(self.settings, "metrics", url=url.render_as_string(False), poolclass=NullPool)
        try:
            with own.begin() as conn:
                conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                return repository.queue(conn)
        finally:
            own.dispose()


class PoolCollector(Collector):
    """Connections of each SQLAlchemy pool of the process: checked out, idle, the pool's size and its overflow."""

    def __init__(self, engines: Callable[[], Mapping[str, Engine | None]]) -> None:
        self.engines = engines

    def collect(self) -> Iterator[Metric]:
        from sqlalchemy.pool import QueuePool

        checked_out = GaugeMetricFamily(
            "memora_db_pool_checked_out", "Connections in use, by pool (api, worker).", labels=["pool"]
        )
        idle = GaugeMetricFamily("memora_db_pool_idle", "Connections open and waiting in the pool.", labels=["pool"])
        size = GaugeMetricFamily(
            "memora_db_pool_size", "Connections the pool keeps (MEMORA_POOL_SIZE).", labels=["pool"]
        )
        overflow = GaugeMetricFamily(
            "memora_db_pool_overflow",
            "Connections open beyond the pool's size (negative: not yet opened).",
            labels=["pool"],
        )
        for name, engine in self.engines().items():
            pool = None if engine is None else engine.pool
            if not isinstance(pool, QueuePool):  # NullPool, StaticPool: nothing to count
                continue
            checked_out.add_metric([name], pool.checkedout())
            idle.add_metric([name], pool.checkedin())
            size.add_metric([name], pool.size())
            overflow.add_metric([name], pool.overflow())
        yield from (checked_out, idle, size, overflow)


class ReplicaCollector(Collector):
    """Each read replica as this process's last check found it (app/db/replicas.py); nothing without replicas."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        replicas = getattr(self.state, "replicas", None)
        if replicas is None:
            return
        labels = ["replica"]
        fit = GaugeMetricFamily(
            "memora_replica_serving", "1 if the replica serves reads (state ok), else 0.", labels=labels
        )
        lag = GaugeMetricFamily(
            "memora_replica_lag_seconds", "How long the replica has lacked WAL the primary had written.", labels=labels
        )
        behind = GaugeMetricFamily(
            "memora_replica_lag_bytes", "WAL bytes between the primary's end and the replica's replay.", labels=labels
        )
        for health in replicas.health():
            fit.add_metric([health.name], 1 if health.state == "ok" else 0)
            if health.lag_seconds is not None:
                lag.add_metric([health.name], health.lag_seconds)
            if health.lag_bytes is not None:
                behind.add_metric([health.name], health.lag_bytes)
        yield from (fit, lag, behind)


class _Process(Collector):
    """The process-wide registry's metrics (app/observe/metrics.py, prometheus_client's process_* and python_*)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def registry(settings: Settings, state: Any) -> CollectorRegistry:
    """What one app's /metrics shows: the process's counters, its database's figures and its pools (the engines the
    app's lifespan puts in STATE, app.state). One registry per app, so what reads an app's database goes with it."""

    def engines() -> dict[str, Engine | None]:
        return {"api": getattr(state, "engine", None), "worker": getattr(state, "worker_engine", None)}

    result = CollectorRegistry(auto_describe=False)
    result.register(_Process())
    result.register(DatabaseCollector(settings, lambda: engines()["api"]))
    result.register(PoolCollector(engines))
    result.register(ReplicaCollector(state))
    return result


def worker_registry(engine: Engine) -> CollectorRegistry:
    """What a standalone `memora worker` shows on MEMORA_WORKER_METRICS_PORT: the process's counters and its pool.
    The queue is the database's, shown by any API's /metrics."""
    result = CollectorRegistry(auto_describe=False)
    result.register(_Process())
    result.register(PoolCollector(lambda: {"worker": engine}))
    return result


@contextmanager
def served(settings: Settings, engine: Engine) -> Iterator[None]:
    """Serve the worker's metrics at http://MEMORA_HOST:MEMORA_WORKER_METRICS_PORT/metrics inside the block (not at
    all with port 0); a port that cannot be had is an AppError naming the setting."""
    if not settings.worker_metrics_port:
        yield
        return
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(
            settings.worker_metrics_port, addr=settings.host, registry=worker_registry(engine)
        )
    except (OSError, OverflowError) as exc:  # OverflowError: a port past 65535 given as --metrics-port
        where = f"{settings.host}:{settings.worker_metrics_port}"
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AppError(
            f"cannot serve the worker's metrics on {where}: {reason}; choose another port with "
            "--metrics-port or MEMORA_WORKER_METRICS_PORT (0: none)"
        ) from None
    log.info("worker metrics on http://%s:%s/metrics", settings.host, settings.worker_metrics_port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
