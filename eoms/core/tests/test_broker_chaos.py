"""Nothing lost, nothing done twice, while processes die and RabbitMQ goes away (issue 4's required tests).

These stop the RabbitMQ application (`rabbitmqctl stop_app` / `start_app`), which every other test
using the broker at the same moment would notice: they run only when pytest is not split over
workers (the SQLite suite, `make test`), and are skipped under pytest-xdist. RabbitMQ is always
started again, even when a test fails.
"""

import email
import email.policy
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.test import Client

from eoms.core import broker, relay
from eoms.core.consumer import Worker
from eoms.core.models import OutboxMessage
from eoms.core.tests.chaos_process import mail_address, mail_token
from eoms.orders.state import OrderState
from eoms.testing.broker import BROKER_TEST_URL, queue_depth, use_test_broker

pytestmark = [
    pytest.mark.broker,
    pytest.mark.broker_chaos,
    pytest.mark.skipif(
        bool(os.environ.get("PYTEST_XDIST_WORKER")),
        reason="stops RabbitMQ, which parallel test workers use: runs in a serial pytest run (make test)",
    ),
]

RABBITMQCTL = "rabbitmqctl"


def _rabbit(*args) -> None:
    subprocess.run([RABBITMQCTL, "-q", *args], check=True, capture_output=True, timeout=120)


def _wait_for_rabbit(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ping = subprocess.run(["rabbitmq-diagnostics", "-q", "ping"], capture_output=True, timeout=60)
        if ping.returncode == 0:
            try:
                broker.ping(BROKER_TEST_URL, timeout=2)
                return
            except broker.BROKER_ERRORS:
                pass
        time.sleep(0.5)
    raise AssertionError(f"RabbitMQ did not come back within {timeout} s")


class Rabbit:
    """Stops and starts the RabbitMQ application; makes sure it runs again at the end."""

    def __init__(self):
        self.stopped = False
        self.restarts = 0

    def stop(self):
        self.stopped = True
        _rabbit("stop_app")

    def start(self):
        _rabbit("start_app")
        _wait_for_rabbit()
        self.stopped = False
        self.restarts += 1

    def ensure_running(self):
        if self.stopped:
            self.start()


@pytest.fixture
def rabbit():
    _wait_for_rabbit()
    r = Rabbit()
    try:
        yield r
    finally:
        if r.stopped:
            subprocess.run([RABBITMQCTL, "-q", "start_app"], capture_output=True, timeout=120)
            _wait_for_rabbit()


# ------------------------------------------------------------------ (a) relay killed, broker restarted

EVENTS = 10_000
KILLS = 20
RESTARTS_AFTER_KILL = {4, 10, 16}  # the broker goes down and comes back three times along the way
MAIL_EVERY = 50  # every 50th event is an approval task, which emails its assignee: 200 emails
MAILS = EVENTS // MAIL_EVERY
MAIL_HOST = "eoms.chaos.example"  # EOMS_PUBLIC_URL's host: the one of every Message-ID


class MailSink:
    """What the SMTP server (aiosmtpd, in this process) received, each message as its raw bytes."""

    def __init__(self):
        self.received: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    sink = MailSink()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def _env(data_dir: Path, namespace: str, smtp_port: int | None = None) -> dict:
    dropped = ("DATABASE_URL", "REDIS_URL", "EOMS_RELAY_IN_PROCESS")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("EOMS_EMAIL_")}
    if smtp_port is not None:  # notifications send email through the test's SMTP server
        env.update(
            EOMS_EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EOMS_EMAIL_HOST="127.0.0.1",
            EOMS_EMAIL_PORT=str(smtp_port),
            EOMS_EMAIL_TIMEOUT="10",
            EOMS_EMAIL_FROM="EOMS <eoms@eoms.chaos.example>",
            EOMS_PUBLIC_URL=f"https://{MAIL_HOST}",
        )
    env.update(
        EOMS_DATA_DIR=str(data_dir),
        DATABASE_URL=f"sqlite:///{data_dir}/eoms.sqlite3",
        BROKER_URL=BROKER_TEST_URL,
        EOMS_BROKER_NAMESPACE=namespace,
        EOMS_BROKER_MAX_ATTEMPTS="8",
        EOMS_BROKER_RETRY_DELAY="0.2",
        EOMS_RELAY_INTERVAL="0.1",
        EOMS_LOG_LEVEL="WARNING",
        CHAOS_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


def _spawn(env, *args, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql).fetchall()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_for_line(log: Path, text: str, count: int, process: subprocess.Popen, timeout: float = 30) -> None:
    """Until the log holds `text` `count` times (the process is up and says so)."""
    deadline = time.monotonic() + timeout
    while log.read_text().count(text) < count:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{text!r} not logged within {timeout} s"
        time.sleep(0.05)


def test_every_event_delivered_once_while_the_relay_is_killed_and_the_broker_restarted(tmp_path, rabbit, smtp_server):
    """10,000 events (200 of them approvals.task_created, each of which calls for one email to its
    assignee) produced while the relay is SIGKILLed 20 times and RabbitMQ stopped and started 3
    times; one worker consumes throughout, with the app's handlers, notifications among them.

    Guaranteed, and asserted: every event's handlers ran to completion once (set equality of the
    produced and the consumed ids; one ProcessedMessage per message and handler), and the SMTP
    server received exactly one email per task_created event — the set of (token, recipient) equals
    the expected one, and the raw count of messages received equals the number of distinct
    Message-IDs and the number of emails called for (no duplicate). A redelivered message (its ack
    lost with the broker) is skipped by ProcessedMessage before notifications sees it, and email is
    sent only after the handler's transaction commits, so neither a relay killed mid-publish nor a
    broker restart sends an email twice. By design the one way an email can arrive twice is a
    sender killed between the SMTP server's acceptance and recording the delivery as sent: after
    ten minutes the delivery is sent again, with the same Message-ID (<delivery id@host>); this test
    kills the relay, which publishes and sends no email, not the worker, so that case cannot occur
    here and the raw count must equal the distinct one."""
    sink, smtp_port = smtp_server
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    namespace = f"eomschaos-{uuid.uuid4().hex[:10]}"
    env = _env(tmp_path, namespace, smtp_port)
    topology = broker.Topology(namespace, 8, 0.2)
    db = tmp_path / "eoms.sqlite3"
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "relay", "producer")}
    subprocess.run([sys.executable, "-m", "eoms.cli", "migrate", "-v0"], env=env, check=True, timeout=120)
    _query(db, "CREATE TABLE chaos_effect (message_id TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    started = time.monotonic()

    worker = _spawn(env, "eoms.core.tests.chaos_process", "worker", log=logs["worker"])
    produce = ["produce", str(EVENTS), "100", "0.4", str(MAIL_EVERY)]
    producer = _spawn(env, "eoms.core.tests.chaos_process", *produce, log=logs["producer"])
    relay_process = None
    kills = 0
    try:
        for kill in range(KILLS):
            relay_process = _spawn(env, "eoms.cli", "relay", log=logs["relay"])
            _wait_for_line(logs["relay"], "publishing to the broker", kill + 1, relay_process)
            # A random moment of its work: publishing a batch, waiting for confirms, marking rows sent.
            time.sleep(rng.uniform(0.0, 1.5))
            if kill in RESTARTS_AFTER_KILL:
                rabbit.stop()
                time.sleep(rng.uniform(0.5, 2.0))  # the relay and the worker find it gone
            os.killpg(relay_process.pid, signal.SIGKILL)
            relay_process.wait(10)
            kills += 1
            if rabbit.stopped:
                rabbit.start()
        assert producer.wait(120) == 0, logs["producer"].read_text()
        relay_process = _spawn(env, "eoms.cli", "relay", log=logs["relay"])
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            done = _query(db, "SELECT COUNT(*) FROM chaos_effect")[0][0]
            if (
                done >= EVENTS
                and _query(db, "SELECT COUNT(*) FROM core_outboxmessage WHERE sent_at IS NULL")[0][0] == 0
                and _query(db, "SELECT COUNT(*) FROM notifications_delivery WHERE state != 'sent'")[0][0] == 0
                and len(sink.received) >= MAILS
            ):
                break
            assert worker.poll() is None, logs["worker"].read_text()[-3000:]
            time.sleep(1)
    finally:
        for process in (relay_process, worker, producer):
            if process is not None:
                _stop(process)
        rabbit.ensure_running()
        depths = {name: queue_depth(name) for name in (topology.dead_name, topology.handlers_queue)}
        conn = broker.connect(BROKER_TEST_URL)
        try:
            topology.delete(conn.channel())
        finally:
            conn.release()
    elapsed = time.monotonic() - started
    context = f"seed {seed}, {elapsed:.0f} s; worker log: {logs['worker'].read_text()[-2000:]}"

    produced = {
        row[0]
        for row in _query(
            db,
            "SELECT message_id FROM core_outboxmessage WHERE event_type IN ('test.chaos', 'approvals.task_created')",
        )
    }
    effects = _query(db, "SELECT message_id FROM chaos_effect")
    consumed = {row[0] for row in effects}
    calls = Counter((tmp_path / "attempts").read_text().split())
    assert (kills, rabbit.restarts) == (KILLS, len(RESTARTS_AFTER_KILL))
    assert len(produced) == EVENTS
    # SQLite stores UUIDs as 32 hex digits; the effect row has the message id as the handler saw it.
    assert {uuid.UUID(m) for m in consumed} == {uuid.UUID(m) for m in produced}, context
    assert len(effects) == EVENTS  # one row per message: the primary key would refuse a second
    assert _query(db, "SELECT COUNT(*) FROM core_processedmessage WHERE handler = 'test.chaos.effect'") == [(EVENTS,)]
    assert _query(db, "SELECT COUNT(*) FROM core_outboxmessage WHERE sent_at IS NULL") == [(0,)]
    assert _query(db, "SELECT COUNT(*) FROM core_deadletter") == [(0,)], context
    assert set(calls) == {str(uuid.UUID(m)) for m in produced}
    # A call whose transaction rolled back (SQLite busy) is retried; none ran twice to completion.
    assert sum(calls.values()) >= EVENTS
    assert depths == {topology.dead_name: 0, topology.handlers_queue: 0}
    # Each relay life killed had started publishing; the worker stopped on SIGTERM, cleanly.
    assert logs["relay"].read_text().count(f"publishing to the broker (exchange {namespace}.events)") >= KILLS
    assert worker.returncode == 0
    stopped = re.search(r"worker stopped; processed (\d+), failed attempts (\d+)", logs["worker"].read_text())
    assert stopped is not None, context
    assert int(stopped.group(1)) >= EVENTS  # a redelivered message counts again (its handler skips it)

    # No side effect twice: one email per event that calls for one, none other, none twice.
    tasks = _query(db, "SELECT message_id FROM core_outboxmessage WHERE event_type = 'approvals.task_created'")
    assert len(tasks) == MAILS
    assert _query(db, "SELECT COUNT(*) FROM core_processedmessage WHERE handler = 'notifications.task_created'") == [
        (MAILS,)
    ]
    assert _query(db, "SELECT COUNT(*) FROM notifications_notification") == [(MAILS,)]
    deliveries = _query(db, "SELECT id, address, state, attempts FROM notifications_delivery")
    assert sorted(state for _, _, state, _ in deliveries) == ["sent"] * MAILS, context
    assert {attempts for *_, attempts in deliveries} == {1}  # each sent by its first and only attempt
    received = [email.message_from_bytes(raw, policy=email.policy.default) for raw in sink.received]
    message_ids = [str(m["Message-ID"]) for m in received]
    mails = Counter((re.search(r"CHAOS-MAIL-\d{5}", str(m["Subject"])).group(0), str(m["To"])) for m in received)
    expected = {(mail_token(n), mail_address(n)) for n in range(MAIL_EVERY - 1, EVENTS, MAIL_EVERY)}
    assert len(expected) == MAILS
    assert set(mails) == expected
    assert max(mails.values()) == 1
    assert len(received) == len(set(message_ids)) == MAILS  # raw count = distinct Message-IDs
    assert set(message_ids) == {f"<{uuid.UUID(pk)}@{MAIL_HOST}>" for pk, *_ in deliveries}
    print(
        f"\n{EVENTS} events, {kills} relay kills, {rabbit.restarts} broker restarts: {elapsed:.0f} s, "
        f"{sum(calls.values())} handler calls, {len(received)} emails received "
        f"({len(set(message_ids))} distinct Message-IDs), seed {seed}"
    )


# ------------------------------------------------------------- (b) broker down during 1,000 API updates

UPDATES = 1_000


@pytest.fixture
def broker_settings(settings):
    yield from use_test_broker(settings)


def test_broker_down_during_1000_order_updates(world, broker_settings, rabbit):
    # A thousand updates in a minute by one user is the point here, not abuse: no API rate limits.
    broker_settings.API_RATE_PER_USER = broker_settings.API_RATE_PER_IP = broker_settings.API_RATE_PER_CLIENT = 0
    order = world.order(OrderState.QUOTING)
    delivered: list = []
    relay.handles("orders.order_updated", name="test.chaos.updates")(lambda m: delivered.append(m.message_id))
    client = Client()
    client.force_login(world.pm)
    try:
        relay.relay_once()  # the topology exists and the world's messages are out before the broker goes
        try:
            rabbit.stop()
            ready = client.get("/readyz").json()
            assert (ready["status"], ready["checks"]["broker"]["status"]) == ("degraded", "degraded")
            statuses = Counter()
            unavailable = 0
            for i in range(UPDATES):
                response = client.patch(
                    f"/api/v1/orders/{order.id}", f'{{"title": "浇筑 {i}"}}', content_type="application/json"
                )
                statuses[response.status_code] += 1
                if i % 100 == 99:  # the relay keeps trying meanwhile, and keeps everything
                    try:
                        relay.relay_once()
                    except relay.TransportUnavailable:
                        unavailable += 1
            assert statuses == {200: UPDATES}  # 0 API errors
            assert unavailable == UPDATES // 100
            waiting = OutboxMessage.objects.filter(sent_at__isnull=True, event_type="orders.order_updated")
            assert waiting.count() == UPDATES
            assert delivered == []
            rabbit.start()
        finally:
            rabbit.ensure_running()
        assert client.get("/readyz").json()["checks"]["broker"]["status"] == "ok"
        assert relay.drain() == UPDATES
        assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0
        worker = Worker(queues=["handlers"])
        worker.run(until=lambda: len(delivered) >= UPDATES, timeout=120)
    finally:
        relay.unregister("test.chaos.updates")
    expected = set(OutboxMessage.objects.filter(event_type="orders.order_updated").values_list("message_id", flat=True))
    assert len(expected) == UPDATES
    assert len(delivered) == UPDATES
    assert set(delivered) == expected
    order.refresh_from_db()
    assert order.title == f"浇筑 {UPDATES - 1}"
    assert queue_depth(broker.topology().handlers_queue) == 0
