"""/metrics under `eoms serve` with two gunicorn workers: whichever worker answers the scrape, the
counts are those of both; a worker that dies leaves its counters in the sums and its live gauges out;
the gauges read at scrape time (readiness, outbox, open dead letters) are there once, current.
The real server runs as a subprocess on a free port, with the JSON log format, whose lines are read back.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

EOMS = str(Path(sys.executable).with_name("eoms"))
TOKEN = "multiprocess-metrics-token"
REQUESTS = 40


RECORD_DEAD_LETTER = """
import uuid
from django.utils import timezone
from eoms.core.dead_letters import record_dead_letter
record_dead_letter(message_id=uuid.uuid4(), event_type="test.poured", aggregate_type="test.slab", aggregate_id="P",
                   body={}, error="RuntimeError: cannot pour", attempts=3, dead_at=timezone.now())
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, **headers) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _scrape(base: str) -> dict:
    status, body = _get(f"{base}/metrics", Authorization=f"Bearer {TOKEN}")
    assert status == 200, body
    types = [line.split()[2] for line in body.decode().splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), "each metric once, not once per worker or copy"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _wait(predicate, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _pids(directory: Path, prefix: str) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob(f"{prefix}_*.db")}


@pytest.mark.parametrize("conn_max_age", [60, 0])
def test_two_workers_add_up_and_a_dead_worker_keeps_its_counts(tmp_path, conn_max_age):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EOMS_") and k != "DATABASE_URL"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env.update(
        {
            "EOMS_DATA_DIR": str(tmp_path / "data"),
            "EOMS_RELAY_IN_PROCESS": "false",
            "EOMS_LANGUAGE": "en",
            "EOMS_METRICS_TOKEN": TOKEN,
            "EOMS_LOG_FORMAT": "json",
            "EOMS_DB_CONN_MAX_AGE": str(conn_max_age),
            "TMPDIR": str(temp),  # where `eoms serve` makes its metrics directory
        }
    )
    subprocess.run([EOMS, "migrate", "--verbosity", "0"], env=env, check=True, timeout=180)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [EOMS, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env=env, stdout=log, stderr=log
        )
    try:
        _wait(lambda: process.poll() is not None or _connectable(port), "eoms serve to listen", timeout=60)
        assert process.poll() is None, log_path.read_text()
        (metrics_dir,) = temp.glob("eoms-metrics-*")

        # Concurrent requests: each sync worker answers one at a time, so both take some.
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _i: _get(f"{base}/readyz")[0], range(REQUESTS)))
        assert statuses == [200] * REQUESTS
        # (the master, which never answers, holds zeros of the metrics created before it forked)
        workers = _pids(metrics_dir, "counter") - {process.pid}
        assert len(workers) == 2, "both workers answered requests and keep their own counts"

        readyz = {"method": "GET", "route": "readyz", "status": "200"}
        scrape = {"method": "GET", "route": "metrics", "status": "200"}
        for scrapes_before in range(4):
            samples = _scrape(base)
            assert _value(samples, "eoms_http_requests_total", **readyz) == REQUESTS
            assert _value(samples, "eoms_http_requests_total", **scrape) == scrapes_before
            assert _value(samples, "eoms_http_request_duration_seconds_count", method="GET", route="readyz") == REQUESTS
            # both workers have run SQL; with CONN_MAX_AGE each keeps its connection, without it none does
            assert _value(samples, "eoms_db_connections_open", alias="default") == (2 if conn_max_age else 0)
            age = _value(samples, "eoms_db_connection_age_seconds", alias="default")
            assert (age > 0) if conn_max_age else (age == 0)
            # read once at scrape time, not added up over the workers
            assert _value(samples, "eoms_ready", component="database") == 1
            assert sum(1 for name, _labels in samples if name == "eoms_outbox_backlog") == 1
            assert ("eoms_dead_letters_open", frozenset()) in samples
            assert _value(samples, "eoms_dead_letters_open") == 0

        # A dead letter recorded by another process (a worker) is counted at the next scrape.
        subprocess.run([EOMS, "shell", "-c", RECORD_DEAD_LETTER], env=env, check=True, timeout=60)
        samples = _scrape(base)
        assert _value(samples, "eoms_dead_letters_open") == 1

        # A worker killed outright: gunicorn replaces it; its counters stay, its live gauges go.
        dead = min(workers)
        assert dead in _pids(metrics_dir, "gauge_livesum")
        os.kill(dead, signal.SIGKILL)
        _wait(lambda: dead not in _pids(metrics_dir, "gauge_livesum"), "the dead worker's live gauges to go")
        assert dead not in _pids(metrics_dir, "gauge_livemax")
        assert dead in _pids(metrics_dir, "counter")
        _wait(lambda: _connectable(port), "a worker to answer")
        samples = _scrape(base)
        assert _value(samples, "eoms_http_requests_total", **readyz) == REQUESTS

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert process.returncode == 0, log_path.read_text()
        assert not metrics_dir.exists(), "the metrics directory is removed when the server stops"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    # Every log line is JSON, gunicorn's own included, and there is one access line per request.
    output = log_path.read_text().splitlines()
    assert output[0] == f"eoms serve: 127.0.0.1:{port}, 2 sync worker(s)"
    lines = [json.loads(line) for line in output[1:]]
    access = [line for line in lines if line["logger"] == "eoms.access" and line["route"] == "readyz"]
    assert len(access) == REQUESTS
    assert {line["pid"] for line in access} == workers
    assert all(len(line["request_id"]) == 32 and line["status"] == 200 for line in access)
    booted = [line for line in lines if line["logger"] == "gunicorn.error" and "Booting worker" in line["event"]]
    assert len(booted) == 3  # two at start, one replacing the killed worker
    assert any(line["event"] == "Shutting down: Master" for line in lines)


def _connectable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
