"""The outbox over the real RabbitMQ: the relay publishes with confirms to the topic exchange, the
worker runs the same handlers with manual acks, retries with backoff, dead-letters after N attempts,
and an administrator replays or discards a dead letter from its page. Each test has its own exchange
and queues (eoms.testing.broker)."""

import io
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import amqp
import kombu
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import translation

from eoms.core import broker, periodic, process_metrics, relay
from eoms.core.consumer import Beat, Worker
from eoms.core.events import DomainEvent, emit
from eoms.core.metrics import CONSUMER_DEAD_LETTERED, CONSUMER_FAILED, CONSUMER_PROCESSED, RELAY_PUBLISHED
from eoms.core.models import AuditEntry, DeadLetter, OutboxMessage, ProcessedMessage
from eoms.testing.broker import BROKER_TEST_URL, queue_depth, take_all, use_test_broker

pytestmark = [pytest.mark.broker, pytest.mark.django_db]


@dataclass(frozen=True, kw_only=True)
class Poured(DomainEvent):
    event_type = "test.poured"
    aggregate_type = "test.slab"
    aggregate_field = "slab"
    slab: str
    n: int


class Calls:
    """A test handler: records (slab, n) of each call; raises while `failing` says so: "all", or
    {(slab, n): how many more calls fail}."""

    def __init__(self, name="test.broker.handler"):
        self.name = name
        self.seen: list[tuple[str, int]] = []
        self.failing: str | dict = {}

    def __call__(self, message):
        key = (message.payload["slab"], message.payload["n"])
        if self.failing == "all" or self.failing.get(key, 0) > 0:
            if self.failing != "all":
                self.failing[key] -= 1
            self.seen.append(("failed", *key))
            raise RuntimeError(f"cannot pour {key[0]}#{key[1]}")
        self.seen.append(key)


@pytest.fixture
def broker_settings(settings):
    yield from use_test_broker(settings)


@pytest.fixture
def calls(db):
    handler = Calls()
    relay.handles("test.poured", name=handler.name)(handler)
    yield handler
    relay.unregister(handler.name)


def pour(*events) -> list[OutboxMessage]:
    with transaction.atomic():
        return [emit(Poured(slab=slab, n=n), actor=None) for slab, n in events]


def counter(metric, **labels) -> float:
    return metric.labels(**labels)._value.get()


def test_publish_confirm_and_consume(broker_settings, calls):
    topo = broker.topology()
    # A queue of our own on the exchange sees exactly what the relay published, as any subscriber would.
    conn = broker.connect(BROKER_TEST_URL)
    topo.declare(conn.channel())
    spy = kombu.Queue(f"{topo.namespace}.spy", topo.exchange(), routing_key="test.#", durable=False, auto_delete=False)
    spy(conn.channel()).declare()
    published_before = counter(RELAY_PUBLISHED, mode="broker")
    processed_before = counter(CONSUMER_PROCESSED, event_type="test.poured")
    try:
        messages = pour(("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3))
        assert relay.relay_once() == 5
        assert counter(RELAY_PUBLISHED, mode="broker") - published_before == 5
        for message in messages:
            message.refresh_from_db()
            assert message.sent_at is not None
            assert message.attempts == 1
        assert queue_depth(topo.handlers_queue) == 5
        seen = take_all(spy.name)
    finally:
        spy(conn.channel()).delete()
        conn.release()
    assert [m.delivery_info["routing_key"] for m in seen] == ["test.poured"] * 5
    assert [m.properties["message_id"] for m in seen] == [str(m.message_id) for m in messages]
    assert {m.properties["delivery_mode"] for m in seen} == {2}
    assert json.loads(seen[2].body) == {
        "message_id": str(messages[2].message_id),
        "event_type": "test.poured",
        "event_version": 1,
        "aggregate_type": "test.slab",
        "aggregate_id": "A",
        "payload": {"slab": "A", "n": 2},
        "actor_id": "",
        "request_id": "",
        "created_at": messages[2].created_at.isoformat(),
    }
    # The exchange is a durable topic exchange: declaring it passively with these properties works.
    conn = broker.connect(BROKER_TEST_URL)
    try:
        kombu.Exchange(topo.exchange_name, "topic", durable=True)(conn.channel()).declare(passive=True)
    finally:
        conn.release()

    worker = Worker()
    worker.run(until=lambda: worker.processed == 5, timeout=20)
    assert calls.seen == [("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3)]
    assert counter(CONSUMER_PROCESSED, event_type="test.poured") - processed_before == 5
    assert sorted(ProcessedMessage.objects.values_list("message_id", flat=True)) == sorted(
        m.message_id for m in messages
    )
    assert queue_depth(topo.handlers_queue) == 0
    assert relay.relay_once() == 0  # nothing left to publish


def test_a_redelivered_message_runs_its_handler_once(broker_settings, calls):
    (message,) = pour(("C", 1))
    assert relay.relay_once() == 1
    OutboxMessage.objects.filter(pk=message.pk).update(sent_at=None)  # as after a relay killed before its commit
    assert relay.relay_once() == 1
    worker = Worker()
    worker.run(until=lambda: worker.processed == 2, timeout=20)
    assert calls.seen == [("C", 1)]
    assert ProcessedMessage.objects.filter(message_id=message.message_id).count() == 1


def test_broker_down_keeps_messages_in_the_outbox(broker_settings, calls):
    broker_settings.BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens there
    messages = pour(("D", 1), ("D", 2))
    with pytest.raises(relay.TransportUnavailable, match="ConnectionRefusedError"):
        relay.relay_once()
    assert [
        (m.sent_at, m.attempts, m.next_attempt_at)
        for m in OutboxMessage.objects.filter(pk__in=[x.pk for x in messages])
    ] == [
        (None, 0, None),
        (None, 0, None),
    ]
    broker_settings.BROKER_URL = BROKER_TEST_URL
    assert relay.relay_once() == 2


def test_a_message_no_queue_takes_is_refused_not_confirmed_into_nowhere(broker_settings, calls):
    topo = broker.topology()
    messages = pour(("E", 1), ("E", 2), ("F", 1))
    transport = relay.default_transport()
    conn = broker.connect(BROKER_TEST_URL)
    try:
        # Someone unbinds our queue: nothing would receive the messages.
        transport.publish([])  # declares the topology
        conn.channel().queue_unbind(topo.handlers_queue, topo.exchange_name, "#")
        conn.channel().queue_bind(topo.handlers_queue, topo.exchange_name, "test.poured.only-F")
        result = transport.publish(messages)
    finally:
        conn.release()
    assert result.confirmed == set()
    assert result.rejected == {
        m.pk: f"unroutable: no queue is bound for 'test.poured' on '{topo.exchange_name}'" for m in messages
    }


def test_a_failed_attempt_is_retried_after_its_delay(broker_settings, calls):
    calls.failing = {("G", 1): 2}  # the first two attempts fail, the third works
    failed_before = counter(CONSUMER_FAILED, event_type="test.poured")
    pour(("G", 1))
    relay.relay_once()
    worker = Worker()
    started = time.monotonic()
    worker.run(until=lambda: worker.processed == 1, timeout=20)
    assert time.monotonic() - started >= 0.25  # it waited 50 ms, then 200 ms in the retry queues
    assert calls.seen == [("failed", "G", 1), ("failed", "G", 1), ("G", 1)]
    assert (worker.failed, worker.processed, worker.dead_lettered) == (2, 1, 0)
    assert counter(CONSUMER_FAILED, event_type="test.poured") - failed_before == 2
    assert DeadLetter.objects.count() == 0
    assert ProcessedMessage.objects.count() == 1


def test_retry_delays_grow_and_name_their_queues(settings):
    settings.BROKER_NAMESPACE = "ns"
    settings.BROKER_MAX_ATTEMPTS = 5
    settings.BROKER_RETRY_DELAY = 2.0
    topo = broker.topology()
    assert topo.retry_delays_ms() == [2000, 8000, 32000, 128000]
    assert [topo.retry_queue(n) for n in (1, 2, 3, 4)] == [
        "ns.retry.2000",
        "ns.retry.8000",
        "ns.retry.32000",
        "ns.retry.128000",
    ]
    settings.BROKER_MAX_ATTEMPTS = 9
    assert broker.topology().retry_delays_ms()[-3:] == [1_800_000, 1_800_000, 1_800_000]  # at most 30 minutes
    assert sorted(n for n in broker.topology().queues() if ".retry." in n) == [
        "ns.retry.128000",
        "ns.retry.1800000",
        "ns.retry.2000",
        "ns.retry.32000",
        "ns.retry.512000",
        "ns.retry.8000",
    ]


def _poison(calls):
    """One message that fails every attempt, through relay and worker into a dead letter."""
    calls.failing = "all"
    (message,) = pour(("P", 1))
    relay.relay_once()
    worker = Worker()
    worker.run(until=lambda: worker.recorded == 1, timeout=30)
    return message, worker


def test_poison_message_is_dead_lettered_after_n_attempts(broker_settings, calls):
    dead_before = counter(CONSUMER_DEAD_LETTERED, event_type="test.poured")
    message, worker = _poison(calls)
    assert calls.seen == [("failed", "P", 1)] * 3  # BROKER_MAX_ATTEMPTS
    assert (worker.failed, worker.dead_lettered, worker.processed) == (3, 1, 0)
    assert counter(CONSUMER_DEAD_LETTERED, event_type="test.poured") - dead_before == 1
    letter = DeadLetter.objects.get()
    assert (letter.message_id, letter.event_type, letter.aggregate_type, letter.aggregate_id) == (
        message.message_id,
        "test.poured",
        "test.slab",
        "P",
    )
    assert (letter.attempts, letter.deaths, letter.state, letter.error) == (
        3,
        1,
        DeadLetter.State.OPEN,
        "RuntimeError: cannot pour P#1",
    )
    assert letter.body["payload"] == {"slab": "P", "n": 1}
    assert ProcessedMessage.objects.count() == 0  # the failed attempts left nothing behind
    assert queue_depth(broker.topology().handlers_queue) == 0
    assert queue_depth(broker.topology().dead_name) == 0  # recorded, acked


def test_an_unreadable_message_is_dead_lettered_at_once(broker_settings, calls):
    topo = broker.topology()
    Worker(queues=["dead"]).run(timeout=0.3)  # declares the topology
    conn = broker.connect(BROKER_TEST_URL)
    try:
        conn.channel().basic_publish(
            amqp.Message(b"{not json", content_type="application/json", type="test.poured"),
            exchange=topo.exchange_name,
            routing_key="test.poured",
        )
    finally:
        conn.release()
    worker = Worker()
    worker.run(until=lambda: worker.recorded == 1, timeout=20)
    letter = DeadLetter.objects.get()
    assert (letter.event_type, letter.body, letter.attempts) == ("test.poured", {"raw": "{not json"}, 1)
    assert letter.error == f"dead-lettered by the broker: rejected from {topo.handlers_queue}"
    assert calls.seen == []


def _admin_client(world, language="en"):
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(world.admin)
    return client


def test_replay_from_the_admin_page(broker_settings, calls, world):
    message, _worker = _poison(calls)
    letter = DeadLetter.objects.get()
    client = _admin_client(world)
    page = client.get(reverse("dead_letters"))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-dead-letter="{letter.pk}"' in html
    assert "RuntimeError: cannot pour P#1" in html
    assert reverse("dead_letter_replay", args=[letter.pk]) in html

    calls.failing = {}  # the cause is fixed
    audit_before = AuditEntry.objects.count()
    response = client.post(reverse("dead_letter_replay", args=[letter.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("dead_letters") + "?state=open"
    letter.refresh_from_db()
    assert (letter.state, letter.resolved_by) == (DeadLetter.State.REPLAYED, world.admin)
    entry = AuditEntry.objects.order_by("-id").first()
    assert AuditEntry.objects.count() == audit_before + 1
    assert (entry.action, entry.object_type, entry.object_id, entry.actor_id) == (
        "core.dead_letter_replayed",
        "core.dead_letter",
        str(letter.pk),
        world.admin.pk,
    )
    assert entry.changes["state"] == ["open", "replayed"]
    assert entry.changes["message_id"] == str(message.message_id)
    message.refresh_from_db()
    assert (message.sent_at, message.attempts) == (None, 0)

    assert relay.relay_once() == 1
    worker = Worker()
    worker.run(until=lambda: worker.processed == 1, timeout=20)
    assert calls.seen[-1] == ("P", 1)
    assert ProcessedMessage.objects.filter(message_id=message.message_id).count() == 1

    # Replaying it again is refused (it is no longer open) and audits nothing.
    again = client.post(reverse("dead_letter_replay", args=[letter.pk]), follow=True)
    assert "This dead letter was already handled (Replayed); reload the page." in again.content.decode()
    assert AuditEntry.objects.count() == audit_before + 1


def test_a_replayed_message_that_dies_again_opens_its_row_again(broker_settings, calls, world):
    message, _worker = _poison(calls)
    letter = DeadLetter.objects.get()
    _admin_client(world).post(reverse("dead_letter_replay", args=[letter.pk]))
    relay.relay_once()
    worker = Worker()
    worker.run(until=lambda: worker.recorded == 1, timeout=30)
    letter.refresh_from_db()
    assert (letter.state, letter.deaths, letter.attempts, letter.resolved_by) == (DeadLetter.State.OPEN, 2, 3, None)
    assert DeadLetter.objects.count() == 1
    assert calls.seen == [("failed", "P", 1)] * 6


def test_discard_from_the_admin_page(broker_settings, calls, world):
    _poison(calls)
    letter = DeadLetter.objects.get()
    client = _admin_client(world)
    response = client.post(reverse("dead_letter_discard", args=[letter.pk]), follow=True)
    assert response.status_code == 200
    assert f"Message test.poured {letter.message_id} discarded." in response.content.decode()
    letter.refresh_from_db()
    assert letter.state == DeadLetter.State.DISCARDED
    entry = AuditEntry.objects.order_by("-id").first()
    assert (entry.action, entry.object_id, entry.changes["state"]) == (
        "core.dead_letter_discarded",
        str(letter.pk),
        ["open", "discarded"],
    )
    assert f'data-dead-letter="{letter.pk}"' not in client.get(reverse("dead_letters")).content.decode()
    assert (
        f'data-dead-letter="{letter.pk}"' in client.get(reverse("dead_letters") + "?state=discarded").content.decode()
    )


@pytest.mark.parametrize("role", ["auditor", "project_manager", "approver", "field_engineer", "finance", "outsider"])
def test_dead_letters_are_for_administrators_only(world, role):
    letter = DeadLetter.objects.create(
        message_id="0190e4b6-6f1c-7cc0-8000-000000000001", event_type="test.poured", dead_at="2026-05-04T01:00:00Z"
    )
    client = Client()
    client.force_login(world.by_role[role])
    assert client.get(reverse("dead_letters")).status_code == 403
    assert client.post(reverse("dead_letter_replay", args=[letter.pk])).status_code == 403
    assert client.post(reverse("dead_letter_discard", args=[letter.pk])).status_code == 403
    letter.refresh_from_db()
    assert letter.state == DeadLetter.State.OPEN


def test_dead_letter_page_needs_sign_in_and_answers_404_for_unknown_ids(world):
    response = Client().get(reverse("dead_letters"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    client = _admin_client(world)
    assert client.post(reverse("dead_letter_replay", args=["0190e4b6-6f1c-7cc0-8000-00000000ffff"])).status_code == 404
    assert client.get(reverse("dead_letters")).content.decode().count("No dead letters.") == 1


def test_dead_letter_page_in_chinese(world):
    DeadLetter.objects.create(
        message_id="0190e4b6-6f1c-7cc0-8000-000000000002", event_type="test.poured", dead_at="2026-05-04T01:00:00Z"
    )
    with translation.override("zh-hans"):
        html = _admin_client(world, "zh-hans").get(reverse("dead_letters")).content.decode()
    assert "死信" in html
    assert "重放" in html
    assert "丢弃" in html


def test_beat_schedules_periodic_jobs_and_the_worker_runs_them(broker_settings, db):
    ran = []
    periodic.register("test.broker.job", lambda: ran.append(1) or "done", every=60)
    try:
        beat = Beat()
        assert "test.broker.job" in beat.tick(now=1000.0)
        assert "test.broker.job" not in beat.tick(now=1030.0)  # not due again before its interval
        assert "test.broker.job" in beat.tick(now=1061.0)
        beat.close()
        worker = Worker(queues=["periodic"])
        worker.run(until=lambda: len(ran) == 2, timeout=20)
        assert queue_depth(broker.topology().periodic_queue) == 0
    finally:
        periodic._JOBS.pop("test.broker.job", None)
    assert ran == [1, 1]


# ------------------------------------------------------------------------------------- the commands


def _call(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_worker_and_beat_need_a_broker(settings, command):
    settings.BROKER_URL = ""
    with pytest.raises(CommandError, match="^BROKER_URL is not set: "):
        _call(command)


def test_relay_once_says_when_the_broker_is_away(broker_settings, calls):
    broker_settings.BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"
    pour(("H", 1))
    with pytest.raises(CommandError) as raised:
        _call("relay", "--once")
    assert str(raised.value) == (
        "the broker is unavailable (ConnectionRefusedError: [Errno 111] Connection refused); "
        "the messages wait in the outbox."
    )
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 1


def test_outbox_status_lists_open_dead_letters_with_a_broker(broker_settings, calls):
    message, _worker = _poison(calls)
    letter = DeadLetter.objects.get()
    out, _ = _call("outbox", "status")
    lines = out.splitlines()
    assert lines[:4] == [
        "backlog: 0 unsent message(s)",
        "oldest unsent: -",
        "failing: 0 message(s) with failed attempts",
        "dead letters: 1 open",
    ]
    assert lines[4].startswith(f"  {message.message_id} test.poured test.slab:P attempts=3 dead=")
    assert lines[4].endswith(" error=RuntimeError: cannot pour P#1")
    letter.state = DeadLetter.State.DISCARDED
    letter.save()
    assert _call("outbox", "status")[0].splitlines()[3:] == [
        "dead letters: 0 open",
        "Notification deliveries that failed: 0 (/notifications/deliveries/)",
    ]


def test_a_process_serves_its_counters_with_the_token_only(settings):
    settings.EOMS_METRICS_TOKEN = ""
    with pytest.raises(ImproperlyConfigured, match="needs EOMS_METRICS_TOKEN"):
        process_metrics.serve("127.0.0.1:0")
    settings.EOMS_METRICS_TOKEN = "scrape-me"
    server = process_metrics.serve("127.0.0.1:0")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 401
        RELAY_PUBLISHED.labels(mode="broker").inc(0)
        request = urllib.request.Request(url, headers={"Authorization": "Bearer scrape-me"})
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    published = counter(RELAY_PUBLISHED, mode="broker")
    assert f'eoms_relay_published_total{{mode="broker"}} {published}' in text
    assert "# TYPE eoms_consumer_dead_lettered_total counter" in text
    assert "eoms_ready" not in text and "eoms_outbox_backlog" not in text  # the web process's gauges
    assert process_metrics.parse_address("9102") == ("0.0.0.0", 9102)
    assert process_metrics.parse_address("127.0.0.1:9102") == ("127.0.0.1", 9102)
