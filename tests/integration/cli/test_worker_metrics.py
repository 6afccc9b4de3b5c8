"""`memora worker --metrics-port`: a standalone worker serves its own Prometheus metrics, or says why it cannot."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def worker(url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MEMORA_WORKER_METRICS_PORT": "0"}  # the suite's schema (MEMORA_DB_SCHEMA) stays
    command = [sys.executable, "-m", "app", "--database-url", url, "worker", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_standalone_worker_serves_its_metrics(fresh_db_url: str) -> None:
    port = _free_port()
    process = worker(fresh_db_url, "--metrics-port", str(port))
    try:
        text = None
        deadline = time.monotonic() + 60  # a safety net: the loop ends at the first answer
        while text is None and process.poll() is None and time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.TransportError:
                time.sleep(0.1)
        assert text is not None, "the worker served no metrics"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert ("memora_chunks_embedded_total", ()) in samples
    assert samples[("memora_db_pool_size", (("pool", "worker"),))] == Settings().pool_size
    assert process.returncode == 0, stderr
    assert f"worker metrics on http://127.0.0.1:{port}/metrics" in stderr


def test_a_metrics_port_in_use_is_one_line_naming_the_setting(fresh_db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = worker(fresh_db_url, "--metrics-port", str(port), "--until-empty")
        _, stderr = process.communicate(timeout=60)

    assert process.returncode == 1
    assert f"error: cannot serve the worker's metrics on 127.0.0.1:{port}" in stderr
    assert "MEMORA_WORKER_METRICS_PORT" in stderr
    assert "Traceback" not in stderr
