"""Events to a real HTTP receiver on 127.0.0.1: the body, the headers and the signature (checked with
the snippet of docs/webhooks.md), retries with exponential backoff, the pause after persistent
failure, once per event, and manual redelivery."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from eoms.core import relay
from eoms.core.models import AuditEntry, OutboxMessage, ProcessedMessage
from eoms.webhooks.models import Attempt, Delivery, DeliveryState, Subscription, SubscriptionState
from eoms.webhooks.services import create_subscription, redeliver, resume_subscription, send_due_deliveries

from .conftest import documented_verify

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def deliver_events() -> int:
    """The relay in-process, then what its handlers queued (their on-commit send does not run inside
    a test's transaction; the periodic job is the same function)."""
    relay.drain(relay.InProcessTransport())
    return send_due_deliveries()


@pytest.fixture
def hook(world, receiver, allow_private):
    relay.drain(relay.InProcessTransport())  # the world's own events, before the webhook exists
    subscription, secret = create_subscription(
        actor=world.admin, target_url=receiver.url, event_types=["orders.order_created"], description="ERP"
    )
    return subscription, secret


def test_an_event_arrives_signed_with_the_documented_format(world, receiver, hook):
    subscription, secret = hook
    with time_machine.travel(T0, tick=False):
        order = world.order()
        counts = deliver_events()
    assert counts == {"delivered": 1, "retry": 0, "failed": 0, "skipped": 0}
    message = OutboxMessage.objects.get(event_type="orders.order_created")
    (request,) = receiver.requests
    delivery = Delivery.objects.get()
    headers = request["headers"]
    assert request["path"] == "/hooks/eoms?x=1"
    assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["X-EOMS-Event"] == "orders.order_created"
    assert headers["X-EOMS-Delivery"] == str(delivery.pk)
    assert headers["X-EOMS-Timestamp"] == str(int(T0.timestamp()))
    assert headers["X-EOMS-Signature"].startswith(f"t={int(T0.timestamp())},v1=")
    body = json.loads(request["body"])
    assert body == {
        "id": str(message.message_id),
        "type": "orders.order_created",
        "version": message.event_version,
        "occurred_at": "2026-11-26T08:00:00Z",
        "aggregate": {"type": message.aggregate_type, "id": str(order.pk)},
        "data": message.payload,
    }
    verify = documented_verify()
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        assert verify(secret, headers["X-EOMS-Signature"], request["body"]) is True
        assert verify("whsec_wrong", headers["X-EOMS-Signature"], request["body"]) is False
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        DeliveryState.DELIVERED,
        1,
        204,
        "",
    )
    (attempt,) = Attempt.objects.all()
    assert (attempt.number, attempt.succeeded, attempt.status_code, attempt.error, attempt.manual) == (
        1,
        True,
        204,
        "",
        False,
    )
    assert attempt.started_at == T0


def test_an_event_is_delivered_once_even_when_the_relay_hands_it_over_twice(world, receiver, hook):
    world.order()
    deliver_events()
    message = OutboxMessage.objects.get(event_type="orders.order_created")
    ProcessedMessage.objects.filter(message_id=message.message_id).delete()  # as if never recorded
    relay.dispatch(message)
    assert send_due_deliveries() == {"delivered": 0, "retry": 0, "failed": 0, "skipped": 0}
    assert len(receiver.requests) == 1
    assert Delivery.objects.count() == 1


def test_other_event_types_and_paused_webhooks_get_nothing(world, receiver, hook):
    subscription, _ = hook
    order = world.order()
    world.update(order, title="改名")  # orders.order_updated: not subscribed
    subscription.state = SubscriptionState.PAUSED
    subscription.save()
    world.order()
    deliver_events()
    assert receiver.requests == []
    assert Delivery.objects.count() == 0


def test_failures_back_off_exponentially_then_pause_the_webhook(world, receiver, hook, settings):
    subscription, _ = hook
    settings.WEBHOOKS_MAX_ATTEMPTS = 3
    settings.WEBHOOKS_PAUSE_AFTER = 2
    receiver.status = 503
    with time_machine.travel(T0, tick=False) as clock:
        world.order(title="一")
        assert deliver_events() == {"delivered": 0, "retry": 1, "failed": 0, "skipped": 0}
        delivery = Delivery.objects.get()
        assert (delivery.state, delivery.attempts, delivery.due_at) == (
            DeliveryState.PENDING,
            1,
            T0 + timedelta(seconds=30),
        )
        assert delivery.last_error == "HTTP 503 Service Unavailable"
        clock.move_to(T0 + timedelta(seconds=29))
        assert send_due_deliveries()["retry"] == 0  # not due yet
        clock.move_to(T0 + timedelta(seconds=30))
        assert send_due_deliveries()["retry"] == 1
        delivery.refresh_from_db()
        assert delivery.due_at == T0 + timedelta(seconds=90)  # 30 s, then 60 s
        clock.move_to(T0 + timedelta(seconds=90))
        assert send_due_deliveries()["failed"] == 1
        delivery.refresh_from_db()
        assert (delivery.state, delivery.attempts, delivery.last_status_code) == (DeliveryState.FAILED, 3, 503)
        assert list(delivery.attempt_log.order_by("number").values_list("number", "status_code", "succeeded")) == [
            (1, 503, False),
            (2, 503, False),
            (3, 503, False),
        ]
        subscription.refresh_from_db()
        assert (subscription.state, subscription.consecutive_failures) == (SubscriptionState.ACTIVE, 1)

        world.order(title="二")
        deliver_events()
        for seconds in (120, 180):
            clock.move_to(T0 + timedelta(seconds=seconds))
            send_due_deliveries()
        subscription.refresh_from_db()
        assert (subscription.state, subscription.consecutive_failures) == (SubscriptionState.PAUSED, 2)
        assert subscription.paused_reason == "2 deliveries in a row failed after every attempt."
        assert len(receiver.requests) == 6

    paused = OutboxMessage.objects.get(event_type="webhooks.subscription_paused")
    assert paused.payload == {
        "id": str(subscription.pk),
        "owner_id": str(world.admin.pk),
        "target_url": receiver.url,
        "reason": "2 deliveries in a row failed after every attempt.",
        "consecutive_failures": 2,
    }
    entry = AuditEntry.objects.get(action="webhooks.subscription_paused")
    assert (entry.actor_id, entry.object_id, entry.changes["state"]) == (
        None,
        str(subscription.pk),
        ["active", "paused"],
    )

    # Paused: a new event makes no delivery; resumed and fixed, a redelivery is a new attempt.
    world.order(title="三")
    deliver_events()
    assert Delivery.objects.count() == 2
    receiver.status = 200
    resume_subscription(actor=world.admin, subscription_id=subscription.pk)
    first = Delivery.objects.filter(state=DeliveryState.FAILED).first()
    redeliver(actor=world.admin, subscription_id=subscription.pk, delivery_id=first.pk)
    assert send_due_deliveries()["delivered"] == 1
    first.refresh_from_db()
    assert (first.state, first.attempts, first.last_status_code) == (DeliveryState.DELIVERED, 4, 200)
    last = first.attempt_log.order_by("-number").first()
    assert (last.number, last.manual, last.succeeded, last.status_code) == (4, True, True, 200)
    assert AuditEntry.objects.filter(action="webhooks.delivery_redelivered").count() == 1
    assert Subscription.objects.get().consecutive_failures == 0


def test_a_failed_redelivery_starts_no_new_retries(world, receiver, hook, settings):
    subscription, _ = hook
    settings.WEBHOOKS_MAX_ATTEMPTS = 1
    receiver.status = 500
    world.order()
    assert deliver_events()["failed"] == 1
    delivery = Delivery.objects.get()
    redeliver(actor=world.admin, subscription_id=subscription.pk, delivery_id=delivery.pk)
    assert send_due_deliveries()["failed"] == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.redelivery) == (DeliveryState.FAILED, 2, False)
    # A manual redelivery's failure does not count against the webhook.
    assert Subscription.objects.get().consecutive_failures == 1
