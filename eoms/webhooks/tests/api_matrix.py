"""Who may call each webhooks endpoint (see eoms.testing.matrix): administrators only; every other
signed-in user, the outsider included, 403; anonymous 401. Targets are public IP literals, so no
name is resolved; nothing is sent during the matrix (the deliveries' sends wait for a commit)."""

import uuid

from django.utils import timezone

from eoms.testing.matrix import expect
from eoms.webhooks.models import Delivery, DeliveryState, Subscription

BASE = "/api/v1/webhooks"
ADMIN = {"admin"}


def hook(world) -> Subscription:
    return Subscription.objects.create(
        owner=world.admin, target_url="https://93.184.216.34/hook", event_types=["*"], secret="whsec_matrix"
    )


def failed_delivery(world) -> tuple[Subscription, Delivery]:
    subscription = hook(world)
    delivery = Delivery.objects.create(
        subscription=subscription,
        message_id=uuid.uuid4(),
        event_type="orders.order_created",
        body="{}",
        state=DeliveryState.FAILED,
        attempts=8,
        due_at=timezone.now(),
        created_at=timezone.now(),
    )
    return subscription, delivery


def admin_only(ok: int) -> dict:
    return expect(ok, ADMIN, outsider=403)


def _redeliver(world) -> dict:
    subscription, delivery = failed_delivery(world)
    return {"path": f"{BASE}/{subscription.pk}/deliveries/{delivery.pk}/redeliver"}


ENDPOINTS = {
    ("GET", BASE): {"request": lambda w: {"path": BASE}, "expect": admin_only(200)},
    ("POST", BASE): {
        "request": lambda w: {
            "path": BASE,
            "json": {"target_url": "https://93.184.216.34/in", "event_types": ["orders.order_created"]},
        },
        "expect": admin_only(201),
    },
    ("GET", f"{BASE}/event-types"): {"request": lambda w: {"path": f"{BASE}/event-types"}, "expect": admin_only(200)},
    ("GET", f"{BASE}/{{webhook_id}}"): {
        "request": lambda w: {"path": f"{BASE}/{hook(w).pk}"},
        "expect": admin_only(200),
    },
    ("PATCH", f"{BASE}/{{webhook_id}}"): {
        "request": lambda w: {"path": f"{BASE}/{hook(w).pk}", "json": {"description": "ERP"}},
        "expect": admin_only(200),
    },
    ("DELETE", f"{BASE}/{{webhook_id}}"): {
        "request": lambda w: {"path": f"{BASE}/{hook(w).pk}"},
        "expect": admin_only(204),
    },
    ("POST", f"{BASE}/{{webhook_id}}/pause"): {
        "request": lambda w: {"path": f"{BASE}/{hook(w).pk}/pause", "json": {"reason": "maintenance"}},
        "expect": admin_only(200),
    },
    ("POST", f"{BASE}/{{webhook_id}}/resume"): {
        "request": lambda w: {"path": f"{BASE}/{hook(w).pk}/resume"},
        "expect": admin_only(200),
    },
    ("GET", f"{BASE}/{{webhook_id}}/deliveries"): {
        "request": lambda w: {"path": f"{BASE}/{failed_delivery(w)[0].pk}/deliveries"},
        "expect": admin_only(200),
    },
    ("POST", f"{BASE}/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver"): {
        "request": _redeliver,
        "expect": admin_only(202),
    },
}
