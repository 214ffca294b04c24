"""The outbox relay: in order per aggregate, retried with backoff, each handler at most once per message."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import transaction

from eoms.core import relay
from eoms.core.events import DomainEvent, emit
from eoms.core.models import OutboxMessage, ProcessedMessage

T0 = datetime(2026, 5, 4, 1, 0, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class Measured(DomainEvent):
    event_type = "test.measured"
    aggregate_type = "test.site"
    aggregate_field = "site"
    site: str
    n: int


class Recorder:
    """Test handlers: each records (handler, site, n) of what it processed, and raises for the
    (handler, site, n) listed in `failing`."""

    def __init__(self):
        self.seen: list[tuple[str, str, int]] = []
        self.failing: set[tuple[str, str, int]] = set()
        self.names: list[str] = []

    def register(self, name: str, event_type: str = "test.measured") -> None:
        def handler(message: OutboxMessage) -> None:
            key = (name, message.payload["site"], message.payload["n"])
            if key in self.failing:
                raise RuntimeError(f"boom {key[1]}#{key[2]}")
            self.seen.append(key)

        relay.handles(event_type, name=name)(handler)
        self.names.append(name)


@pytest.fixture
def recorder(db):
    rec = Recorder()
    yield rec
    for name in rec.names:
        relay.unregister(name)


def publish(*events) -> list[OutboxMessage]:
    with transaction.atomic():
        return [emit(Measured(site=site, n=n), actor=None) for site, n in events]


def test_delivers_every_message_in_order(recorder):
    recorder.register("test.first")
    recorder.register("test.second")
    with time_machine.travel(T0, tick=False):
        messages = publish(("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3))
        assert relay.relay_once() == 5
    assert recorder.seen == [
        (name, site, n)
        for site, n in (("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3))
        for name in ("test.first", "test.second")
    ]
    for message in messages:
        message.refresh_from_db()
        assert (message.sent_at, message.attempts, message.last_error, message.next_attempt_at) == (T0, 1, "", None)
    assert ProcessedMessage.objects.count() == 10
    # Nothing left to do: a second pass delivers nothing and calls no handler.
    assert relay.relay_once() == 0
    assert len(recorder.seen) == 10


def test_failure_holds_back_its_aggregate_only(recorder):
    recorder.register("test.first")
    recorder.failing = {("test.first", "A", 2)}
    with time_machine.travel(T0, tick=False) as clock:
        a1, a2, a3, b1 = publish(("A", 1), ("A", 2), ("A", 3), ("B", 1))
        b2 = publish(("B", 2))[0]
        assert relay.relay_once() == 3
        assert recorder.seen == [("test.first", "A", 1), ("test.first", "B", 1), ("test.first", "B", 2)]
        for m in (a1, a2, a3, b1, b2):
            m.refresh_from_db()
        assert (a2.sent_at, a2.attempts, a2.last_error, a2.next_attempt_at) == (
            None,
            1,
            "RuntimeError: boom A#2",
            T0 + timedelta(seconds=2),
        )
        assert (a3.sent_at, a3.attempts, a3.last_error) == (None, 0, "")
        assert (a1.sent_at, b1.sent_at, b2.sent_at) == (T0, T0, T0)

        # Before the backoff has passed nothing is tried, even though A#3 is due on its own.
        clock.shift(timedelta(seconds=1))
        assert relay.relay_once() == 0
        a2.refresh_from_db()
        assert a2.attempts == 1

        # It fails again: the wait doubles.
        clock.shift(timedelta(seconds=2))
        assert relay.relay_once() == 0
        a2.refresh_from_db()
        assert (a2.attempts, a2.next_attempt_at) == (2, T0 + timedelta(seconds=3 + 4))

        # Once it works, A#2 and then A#3 go out, in that order.
        recorder.failing = set()
        clock.shift(timedelta(seconds=5))
        assert relay.relay_once() == 2
        assert recorder.seen[-2:] == [("test.first", "A", 2), ("test.first", "A", 3)]
        a2.refresh_from_db()
        assert (a2.sent_at, a2.attempts, a2.last_error) == (T0 + timedelta(seconds=8), 3, "")


def test_redelivery_skips_handlers_that_already_processed(recorder):
    recorder.register("test.first")
    recorder.register("test.second")
    recorder.failing = {("test.second", "A", 1)}
    with time_machine.travel(T0, tick=False) as clock:
        (message,) = publish(("A", 1))
        assert relay.relay_once() == 0
        assert recorder.seen == [("test.first", "A", 1)]
        assert list(ProcessedMessage.objects.values_list("message_id", "handler")) == [
            (message.message_id, "test.first")
        ]
        recorder.failing = set()
        clock.shift(timedelta(seconds=3))
        assert relay.relay_once() == 1
    # test.first ran once only; test.second ran when it could.
    assert recorder.seen == [("test.first", "A", 1), ("test.second", "A", 1)]
    assert sorted(ProcessedMessage.objects.values_list("handler", flat=True)) == ["test.first", "test.second"]


def test_dispatch_twice_runs_each_handler_once(recorder):
    recorder.register("test.first")
    (message,) = publish(("C", 1))
    relay.dispatch(message)
    relay.dispatch(message)
    assert recorder.seen == [("test.first", "C", 1)]


def test_handler_sees_only_its_event_types_and_unregister_stops_it(recorder):
    recorder.register("test.other", event_type="test.something_else")
    recorder.register("test.first")
    publish(("D", 1))
    assert relay.relay_once() == 1
    assert recorder.seen == [("test.first", "D", 1)]
    relay.unregister("test.first")
    assert [name for name, _ in relay.handlers_for("test.measured")] == []
    publish(("D", 2))
    assert relay.relay_once() == 1
    assert recorder.seen == [("test.first", "D", 1)]


def test_backoff_grows_to_a_ceiling():
    assert [relay._backoff(n).total_seconds() for n in (1, 2, 3, 10)] == [2, 4, 8, 1024]
    assert relay._backoff(11) == timedelta(minutes=30)
    assert relay._backoff(10_000) == timedelta(minutes=30)


def test_batch_limits_one_pass(recorder):
    recorder.register("test.first")
    publish(*(("E", n) for n in range(5)))
    assert relay.relay_once(batch=2) == 2
    assert relay.relay_once(batch=2) == 2
    assert relay.relay_once(batch=2) == 1
    assert [n for _, _, n in recorder.seen] == [0, 1, 2, 3, 4]
