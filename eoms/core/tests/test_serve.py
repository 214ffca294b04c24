"""`eoms serve` runs the real gunicorn server as a subprocess: pages and static files answer, SIGTERM exits 0."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from eoms.core.management.commands.serve import default_workers

EOMS = str(Path(sys.executable).with_name("eoms"))


def _env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EOMS_") and k != "DATABASE_URL"}
    env.update({"EOMS_DATA_DIR": str(data_dir), "EOMS_RELAY_IN_PROCESS": "false", "EOMS_LANGUAGE": "en"})
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def server(tmp_path):
    env = _env(tmp_path)
    subprocess.run([EOMS, "migrate", "--verbosity", "0"], env=env, check=True, timeout=120)
    port = _free_port()
    process = subprocess.Popen(
        [EOMS, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"eoms serve did not start: {process.communicate()[0].decode()}")
            time.sleep(0.2)
    yield process, base
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.embedded
def test_serves_pages_and_static_files_then_stops_on_sigterm(server):
    process, base = server

    status, body = _get(f"{base}/login/")
    assert status == 200
    assert b'name="password"' in body
    status, body = _get(f"{base}/static/vendor/htmx/htmx.min.js")
    assert status == 200
    assert b"htmx" in body
    status, body = _get(f"{base}/favicon.ico")  # the browsers' own request, redirected to the icon
    assert (status, body[:5]) == (200, b"<svg ")

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output.decode()
    text = output.decode()
    assert "1 sync worker(s)" in text
    assert "Shutting down: Master" in text


def test_default_worker_count_is_twice_the_cpus_plus_one_capped_by_env(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.delenv("EOMS_WEB_WORKERS", raising=False)
    assert default_workers() == 8
    monkeypatch.setenv("EOMS_WEB_WORKERS", "20")
    assert default_workers() == 9
    monkeypatch.setenv("EOMS_WEB_WORKERS", "3")
    assert default_workers() == 3
