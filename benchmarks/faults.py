"""The database going away under load, and how the API comes back: errors clients meet and time to full recovery.

Four search clients (keep-alive connections, one request after another) run against the API on loopback while:

    restart   pg_ctl restart -m fast of the embedded server (same port), --rounds times;
    moved     the embedded server stopped and started on another port (the API and its worker follow it; the time
              until a document posted right after is embedded is the worker's);
    kill-9    kill -9 of the postmaster under `memora serve` (a subprocess): its supervisor starts the server again.

For each: the requests that failed during the outage, by status and error code (transport errors would be resets),
the time the fault took (restart: pg_ctl's own time), and the time from the fault to full recovery (every client
answered SETTLED times in a row again). The tests in tests/integration/faults/ and tests/e2e/test_supervision.py
assert what the answers are; this script measures how many and how long.

    .venv/bin/python benchmarks/faults.py [--rounds 5] [--json benchmarks/results/faults.json]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from common import REPO_ROOT, code_version, console, machine, print_table, write_json

from app.api.main import create_app
from app.api.serving import listen
from app.config import Settings
from app.db import migrate
from app.db.embedded import EmbeddedPostgres

CLIENTS = 4
SETTLED = 3
WAIT_S = 120
SEARCH = {"query": "aardvark digs at night", "k": 5}


class Load:
    """CLIENTS threads searching BASE_URL; each answer kept as (monotonic time, outcome), outcome 200 or a failure."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.answers: list[list[tuple[float, Any]]] = [[] for _ in range(CLIENTS)]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        self.wait_settled(time.monotonic())
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as http:
            while not self._stop.is_set():
                try:
                    response = http.post("/v1/collections/kb/search", json=SEARCH)
                    if response.status_code == 200:
                        outcome: Any = 200
                    elif response.headers.get("content-type") == "application/json":
                        outcome = f"{response.status_code} {response.json()['error']['code']}"
                    else:
                        outcome = f"{response.status_code} {response.headers.get('content-type')}"
                except httpx.TransportError as exc:
                    outcome = f"transport: {type(exc).__name__}"
                    time.sleep(0.05)  # a refused connection fails at once; do not spin
                self.answers[i].append((time.monotonic(), outcome))

    def recovered_at(self, since: float) -> float | None:
        """When every client had answered SETTLED times in a row after SINCE (the first of those), else None."""
        times = []
        for answers in self.answers:
            after = [(t, o) for t, o in list(answers) if t >= since]
            run_start = None
            run = 0
            found = None
            for t, outcome in after:
                if outcome == 200:
                    run_start = t if run == 0 else run_start
                    run += 1
                    if run == SETTLED:
                        found = run_start
                        break
                else:
                    run = 0
            if found is None:
                return None
            times.append(found)
        return max(times)

    def wait_settled(self, since: float) -> float:
        deadline = time.monotonic() + WAIT_S
        while (at := self.recovered_at(since)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the clients did not recover within {WAIT_S}s")
            time.sleep(0.05)
        return at

    def failures(self, since: float) -> Counter[str]:
        return Counter(o for answers in self.answers for t, o in list(answers) if t >= since and o != 200)

    def requests(self, since: float, until: float) -> int:
        return sum(1 for answers in self.answers for t, _ in list(answers) if since <= t <= until)


@contextmanager
def served(settings: Settings, *, worker: bool = False) -> Iterator[str]:
    """The API under uvicorn in a thread on loopback; yields its base URL."""
    sockets = listen("127.0.0.1", 0)
    port = sockets[0].getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, worker=worker), log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def _prepare(base_url: str) -> None:
    httpx.post(f"{base_url}/v1/collections", json={"name": "kb", "embedding_provider": "hashing"}).raise_for_status()
    docs = [
        {"external_id": f"d{i}", "content": f"The aardvark {i} digs at night and eats termites."} for i in range(50)
    ]
    httpx.post(f"{base_url}/v1/collections/kb/documents", json=docs).raise_for_status()


def _outcome(load: Load, fault_at: float, fault_done: float) -> dict[str, Any]:
    recovered = load.wait_settled(fault_done)
    failures = load.failures(fault_at)
    return {
        "fault_s": round(fault_done - fault_at, 3),
        "recovery_s": round(recovered - fault_at, 3),
        "requests_during": load.requests(fault_at, recovered),
        "failed": sum(failures.values()),
        "failures": dict(failures),
    }


def restart_rounds(settings: Settings, rounds: int) -> list[dict[str, Any]]:
    embedded = EmbeddedPostgres(settings.data_dir)
    results = []
    with served(settings) as url:
        _prepare(url)
        with Load(url) as load:
            for _ in range(rounds):
                time.sleep(1)  # steady load before the fault
                at = time.monotonic()
                embedded.restart()
                results.append(_outcome(load, at, time.monotonic()))
    return results


def moved(settings: Settings) -> dict[str, Any]:
    embedded = EmbeddedPostgres(settings.data_dir)
    with served(settings, worker=True) as url, Load(url) as load:
        time.sleep(1)
        old = embedded.status()
        at = time.monotonic()
        embedded.stop()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        new = EmbeddedPostgres(settings.data_dir, port=port).ensure_running()
        done = time.monotonic()
        httpx.post(f"{url}/v1/collections/kb/documents", json={"external_id": "after", "content": "Moved."})
        result = _outcome(load, at, done)
        while httpx.get(f"{url}/v1/collections/kb/documents/after").json()["status"] != "ready":
            time.sleep(0.05)
        result["worker_embedded_after_s"] = round(time.monotonic() - done, 3)
        result["ports"] = [old.port if old else None, new.port]
    return result


def kill_9(data_dir: Path) -> dict[str, Any]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORA_")}
    env |= {"MEMORA_DATA_DIR": str(data_dir), "MEMORA_PORT": str(port), "MEMORA_LOG_LEVEL": "warning"}
    serve = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--no-worker"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: _answers(f"{url}/healthz"))
        with Load(url) as load:
            time.sleep(1)
            server = EmbeddedPostgres(data_dir).status()
            assert server is not None
            at = time.monotonic()
            os.kill(server.pid, signal.SIGKILL)
            _until(lambda: (s := EmbeddedPostgres(data_dir).status()) is not None and s.pid != server.pid)
            result = _outcome(load, at, time.monotonic())
            result["fault_s"] = None
            result["server_back_s"] = round(time.monotonic() - at, 3)
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)
    return result


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up after {WAIT_S}s")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="pg_ctl restarts under load")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "faults.json")
    args = parser.parse_args()

    payload: dict[str, Any] = {"machine": machine(), "code": code_version(), "clients": CLIENTS, "settled": SETTLED}
    with tempfile.TemporaryDirectory(prefix="memora-faults-") as tmp:
        data_dir = Path(tmp) / "memora"
        settings = Settings(database_url=None, data_dir=data_dir, pg_port=0)
        try:
            migrate.upgrade(settings)
            payload["restart"] = restart_rounds(settings, args.rounds)
            payload["moved"] = moved(settings)
            EmbeddedPostgres(data_dir).stop()
            payload["kill_9"] = kill_9(data_dir)
        finally:
            EmbeddedPostgres(data_dir).stop()

    rows = [[f"restart {i + 1}", r["fault_s"], r["recovery_s"], r["requests_during"], r["failed"], _kinds(r)]
            for i, r in enumerate(payload["restart"])]  # fmt: skip
    for name in ("moved", "kill_9"):
        r = payload[name]
        rows.append([name, r["fault_s"], r["recovery_s"], r["requests_during"], r["failed"], _kinds(r)])
    print_table(
        f"{CLIENTS} search clients; recovery: every client {SETTLED} x 200 in a row again",
        ["fault", "fault s", "recovery s", "requests", "failed", "failures"],
        rows,
    )
    recoveries = [r["recovery_s"] for r in payload["restart"]]
    payload["restart_summary"] = {
        "recovery_s_median": statistics.median(recoveries),
        "recovery_s_max": max(recoveries),
        "failed_total": sum(r["failed"] for r in payload["restart"]),
        "non_503": sum(
            n for r in payload["restart"] for k, n in r["failures"].items() if k != "503 database_unavailable"
        ),
    }
    console.print(payload["restart_summary"])
    moved_s, back_s = payload["moved"]["worker_embedded_after_s"], payload["kill_9"]["server_back_s"]
    console.print(f"moved: a document posted after the move was embedded in {moved_s}s; kill -9: the server ran again "
                  f"after {back_s}s")  # fmt: skip
    write_json(args.json, payload)


def _kinds(result: dict[str, Any]) -> str:
    return ", ".join(f"{n} x {kind}" for kind, n in sorted(result["failures"].items())) or "-"


if __name__ == "__main__":
    main()
    console.print("done")
