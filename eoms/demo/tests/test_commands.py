"""The operator commands: `eoms audit verify`, `eoms outbox status`, `eoms relay`, `eoms run`, `eoms demo`.

The in-process tests use the test database; the process tests run the real `eoms` console command
on a fresh SQLite database in a temporary EOMS_DATA_DIR, as an operator would."""

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command

from eoms.core import relay
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.orders.state import OrderState


def _call(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_audit_verify_reports_intact_chain(world):
    world.order(OrderState.SIGNED)
    out, err = _call("audit", "verify")
    assert out == f"audit chain intact: {AuditEntry.objects.count()} entries\n"
    # The world's approval flow (saved, published); the order: created, 4 transitions, the signed
    # contract; its approval: started, task created, task decided, completed.
    assert AuditEntry.objects.count() == 2 + 6 + 4
    assert err == ""


def test_audit_verify_names_the_first_edited_entry_and_exits_1(world, audit_rows_editable):
    world.order(OrderState.APPROVED)
    assert _call("audit", "seal")[0] == "sealed 10 audit entries; the chain ends at #10\n"
    AuditEntry.objects.filter(seq=3).update(object_repr="edited afterwards")
    AuditEntry.objects.filter(seq=4).update(object_repr="edited too")
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit", "verify", stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 1
    assert err.getvalue() == "audit chain broken at entry #3: content does not match its hash (edited)\n"


def test_outbox_status_counts_backlog_age_and_failures(world):
    created_at = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    OutboxMessage.objects.update(sent_at=created_at)  # the world's own set-up was delivered
    with time_machine.travel(created_at, tick=False):
        world.order(OrderState.QUOTING)  # two messages for one order: created, start_quotation

    def fail(message):
        raise RuntimeError("webhook endpoint answered 503")

    relay.handles("orders.order_created", name="test.failing")(fail)
    try:
        with time_machine.travel(created_at + timedelta(hours=2, minutes=5), tick=False):
            assert relay.relay_once() == 0  # the first fails, the second waits behind it
            out, _ = _call("outbox", "status")
    finally:
        relay.unregister("test.failing")
    lines = out.splitlines()
    assert lines[:3] == [
        "backlog: 2 unsent message(s)",
        "oldest unsent: 2h 5m 0s",
        "failing: 1 message(s) with failed attempts",
    ]
    failing = OutboxMessage.objects.get(attempts=1)
    assert failing.event_type == "orders.order_created"
    assert lines[3].startswith(f"  #{failing.id} orders.order_created orders.order:{failing.aggregate_id} attempts=1 ")
    assert lines[3].endswith("error=RuntimeError: webhook endpoint answered 503")


def test_outbox_status_of_an_empty_outbox(db):
    out, _ = _call("outbox", "status")
    assert out == (
        "backlog: 0 unsent message(s)\noldest unsent: -\nfailing: 0 message(s) with failed attempts\n"
        "Notification deliveries that failed: 0 (/notifications/deliveries/)\n"
    )


def test_relay_once_delivers_everything_due(world):
    world.order(OrderState.PENDING_APPROVAL)
    # The world's flow (2); the order: created, 2 transitions; its approval: started, first task.
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 2 + 3 + 2
    out, _ = _call("relay", "--once")
    assert out == "delivered 7 message(s); sealed 7 audit entries\n"
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0


# ------------------------------------------------------------------ the console command, as a process


def _env(data_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "EOMS_RELAY_IN_PROCESS")}
    env.update(
        EOMS_DATA_DIR=str(data_dir),
        DATABASE_URL=f"sqlite:///{data_dir}/eoms.sqlite3",
        EOMS_RELAY_INTERVAL="0.2",
        PYTHONUNBUFFERED="1",
    )
    return env


def _eoms(data_dir, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eoms.cli", *args],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("eoms-data")
    result = _eoms(data_dir, "demo", "--orders", "15", "--seed", "3")
    assert result.returncode == 0, result.stderr
    return data_dir


@pytest.mark.embedded
def test_demo_command_loads_and_prints_logins(demo_dir):
    result = _eoms(demo_dir, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("audit chain intact: ")


@pytest.mark.embedded
def test_demo_command_refuses_to_load_twice(demo_dir):
    result = _eoms(demo_dir, "demo", "--orders", "15")
    assert result.returncode == 0
    assert result.stdout.startswith("The demo company is already loaded; nothing to do (--reset reloads it).\n")
    assert "  pm_zhang     pm-demo-2026" in result.stdout
    assert "Loading" not in result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not true within {seconds} s")


@pytest.mark.embedded
def test_run_serves_pages_and_drains_the_outbox_in_process(demo_dir):
    # The demo delivered its own history; the last 150 messages are made undelivered again (as if
    # the process had died before the relay came to them): `eoms run` must drain them.
    assert _eoms(demo_dir, "outbox", "status").stdout.startswith("backlog: 0 ")
    undo = (
        "from eoms.core.models import OutboxMessage as M; "
        "M.objects.filter(pk__in=list(M.objects.order_by('-id').values_list('pk', flat=True)[:150]))"
        ".update(sent_at=None)"
    )
    assert _eoms(demo_dir, "shell", "-c", undo).returncode == 0
    backlog = int(_eoms(demo_dir, "outbox", "status").stdout.split()[1])
    assert backlog == 150
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "eoms.cli", "run", f"127.0.0.1:{port}"],
        env=_env(demo_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def login_page():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2) as response:
                    return response.status, response.read().decode()
            except OSError:
                return None

        code, body = _wait_for(login_page, 60)
        assert code == 200
        assert 'name="username"' in body
        _wait_for(lambda: _eoms(demo_dir, "outbox", "status").stdout.startswith("backlog: 0 "), 60)
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "Outbox relay running in this process (every 0.2 s)." in output


@pytest.mark.embedded
def test_relay_process_stops_gracefully_on_sigterm(demo_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "eoms.cli", "relay", "--interval", "0.2"],
        env=_env(demo_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert first == "relay running (interval 0.2 s); SIGTERM or Ctrl-C stops it\n"
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.startswith("relay stopped; delivered ")


@pytest.mark.embedded
def test_demo_reset_erases_and_reloads(tmp_path):
    first = _eoms(tmp_path, "demo", "--orders", "3", "--seed", "1")
    assert first.returncode == 0, first.stderr
    assert _eoms(tmp_path, "audit", "checkpoint").stdout.startswith("audit checkpoint #")
    again = _eoms(tmp_path, "demo", "--orders", "5", "--seed", "2", "--reset")
    assert again.returncode == 0, again.stderr
    assert "Database erased." in again.stdout
    # The old chain's checkpoints are kept aside; the new chain is not measured against them.
    (retired,) = tmp_path.glob("audit-checkpoints.jsonl.retired-*")
    assert f"Audit checkpoints of the erased chain moved to {retired}." in again.stdout
    assert not (tmp_path / "audit-checkpoints.jsonl").exists()
    assert ", 5 orders (" in again.stdout
    verify = _eoms(tmp_path, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
