"""The webhooks API: the secret is given once, targets are checked, every change is audited, and
the delivery log shows each attempt."""

import json
import uuid

import pytest
from django.utils import timezone

from eoms.core.models import AuditEntry
from eoms.webhooks.models import Attempt, Delivery, DeliveryState, Subscription

pytestmark = pytest.mark.django_db
BASE = "/api/v1/webhooks"


@pytest.fixture
def admin(client, world):
    client.force_login(world.admin)
    return client


def post(client, path, body=None):
    return client.post(path, json.dumps(body or {}), content_type="application/json")


def test_create_gives_the_secret_once_and_audits_without_it(admin, world):
    response = post(
        admin,
        BASE,
        {"target_url": "https://93.184.216.34/in", "event_types": ["orders.order_created", "*"], "description": "ERP"},
    )
    assert response.status_code == 201
    body = response.json()
    subscription = Subscription.objects.get()
    assert body["secret"] == subscription.secret
    assert body["secret"].startswith("whsec_") and len(body["secret"]) == 49
    assert (body["event_types"], body["state"], body["owner"], body["consecutive_failures"]) == (
        ["*"],
        "active",
        world.admin.username,
        0,
    )
    for path in (BASE, f"{BASE}/{subscription.pk}"):
        assert subscription.secret not in admin.get(path).content.decode()
    entry = AuditEntry.objects.get(action="webhooks.subscription_created")
    assert entry.changes == {"target_url": "https://93.184.216.34/in", "event_types": ["*"], "description": "ERP"}
    assert subscription.secret not in json.dumps(entry.changes)


def test_an_internal_target_answers_422_problem(admin):
    response = post(admin, BASE, {"target_url": "https://169.254.169.254/latest/", "event_types": ["*"]})
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "webhook.target_refused"
    assert problem["errors"] == [
        {
            "field": "target_url",
            "message": "The target resolves to an internal address (169.254.169.254); webhooks may not call it.",
        }
    ]
    assert Subscription.objects.count() == 0


def test_unknown_event_types_answer_422(admin):
    response = post(admin, BASE, {"target_url": "https://93.184.216.34/in", "event_types": ["orders.nothing"]})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "event_types", "message": "Unknown event type: orders.nothing"}]


def test_update_pause_resume_delete_are_audited(admin, world):
    subscription = Subscription.objects.create(
        owner=world.admin, target_url="https://93.184.216.34/a", event_types=["*"], secret="whsec_x"
    )
    path = f"{BASE}/{subscription.pk}"
    response = admin.patch(path, json.dumps({"event_types": ["orders.order_updated"]}), content_type="application/json")
    assert response.status_code == 200
    assert (response.json()["event_types"], response.json()["version"]) == (["orders.order_updated"], 2)
    assert post(admin, f"{path}/pause", {"reason": "ERP upgrade"}).json()["paused_reason"] == "ERP upgrade"
    assert post(admin, f"{path}/resume").json()["state"] == "active"
    assert admin.delete(path).status_code == 204
    assert Subscription.objects.count() == 0
    assert list(
        AuditEntry.objects.filter(object_id=str(subscription.pk)).order_by("id").values_list("action", "changes")
    ) == [
        ("webhooks.subscription_updated", {"event_types": [["*"], ["orders.order_updated"]]}),
        ("webhooks.subscription_paused", {"state": ["active", "paused"], "reason": "ERP upgrade"}),
        ("webhooks.subscription_resumed", {"state": ["paused", "active"]}),
        (
            "webhooks.subscription_deleted",
            {"target_url": "https://93.184.216.34/a", "event_types": ["orders.order_updated"]},
        ),
    ]


def test_the_delivery_log_lists_attempts(admin, world):
    subscription = Subscription.objects.create(
        owner=world.admin, target_url="https://93.184.216.34/a", event_types=["*"], secret="whsec_x"
    )
    now = timezone.now()
    delivery = Delivery.objects.create(
        subscription=subscription,
        message_id=uuid.uuid4(),
        event_type="orders.order_created",
        body="{}",
        state=DeliveryState.PENDING,
        attempts=2,
        due_at=now,
        created_at=now,
        last_status_code=500,
        last_error="HTTP 500 Internal Server Error",
    )
    for number in (1, 2):
        Attempt.objects.create(
            delivery=delivery,
            number=number,
            status_code=500,
            latency_ms=12,
            error="HTTP 500 Internal Server Error",
            started_at=now,
        )
    body = admin.get(f"{BASE}/{subscription.pk}/deliveries").json()
    assert body["count"] == 1
    (result,) = body["results"]
    assert (result["event_type"], result["state"], result["attempts"], result["last_status_code"]) == (
        "orders.order_created",
        "pending",
        2,
        500,
    )
    assert [(a["number"], a["status_code"], a["latency_ms"], a["succeeded"]) for a in result["attempt_log"]] == [
        (2, 500, 12, False),
        (1, 500, 12, False),
    ]
