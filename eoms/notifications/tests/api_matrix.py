"""Who may call each notifications endpoint (see eoms.testing.matrix). Every signed-in user has an
inbox of their own and reaches only that: the notification a request targets is world.pm's, so the
others (the outsider included) get 404 for it, as for a notification that does not exist."""

import uuid

from django.utils import timezone

from eoms.notifications.models import Delivery, DeliveryState, Notification, NotificationKind
from eoms.testing.matrix import IDENTITIES, expect

BASE = "/api/v1/notifications"
SIGNED_IN = frozenset(IDENTITIES) - {"anonymous"}


def pm_notification(world) -> Notification:
    return Notification.objects.create(
        recipient=world.pm,
        kind=NotificationKind.ORDER_TRANSITIONED,
        title="ORD-2026-000001 is now Approved",
        body="",
        url="/",
        message_id=uuid.uuid4(),
        event_type="orders.order_transitioned",
        created_at=timezone.now(),
    )


def failed_delivery(world) -> Delivery:
    notification = pm_notification(world)
    return Delivery.objects.create(
        notification=notification,
        message_id=notification.message_id,
        recipient=world.pm,
        channel="email",
        address="pm@example.com",
        state=DeliveryState.FAILED,
        due_at=timezone.now(),
        attempts=5,
        last_error="ConnectionRefusedError: [Errno 111] Connection refused",
        created_at=timezone.now(),
    )


ADMIN = frozenset({"admin"})

ENDPOINTS = {
    ("GET", f"{BASE}"): {"request": lambda w: {"path": BASE}, "expect": expect(200, SIGNED_IN)},
    ("GET", f"{BASE}/unread-count"): {
        "request": lambda w: {"path": f"{BASE}/unread-count"},
        "expect": expect(200, SIGNED_IN),
    },
    ("POST", f"{BASE}/read-all"): {"request": lambda w: {"path": f"{BASE}/read-all"}, "expect": expect(200, SIGNED_IN)},
    ("GET", f"{BASE}/preferences"): {
        "request": lambda w: {"path": f"{BASE}/preferences"},
        "expect": expect(200, SIGNED_IN),
    },
    ("PUT", f"{BASE}/preferences"): {
        "request": lambda w: {
            "path": f"{BASE}/preferences",
            "json": {
                "channels": {"order_transitioned": {"email": False}},
                "quiet_from": "22:00",
                "quiet_until": "07:00",
            },
        },
        "expect": expect(200, SIGNED_IN),
    },
    ("GET", f"{BASE}/deliveries"): {
        "request": lambda w: {"path": f"{BASE}/deliveries"},
        "expect": expect(200, ADMIN, outsider=403),
    },
    ("POST", f"{BASE}/deliveries/retry"): {
        "request": lambda w: {"path": f"{BASE}/deliveries/retry", "json": {"ids": [str(failed_delivery(w).pk)]}},
        "expect": expect(200, ADMIN, outsider=403),
    },
    ("POST", f"{BASE}/deliveries/discard"): {
        "request": lambda w: {"path": f"{BASE}/deliveries/discard", "json": {"ids": [str(failed_delivery(w).pk)]}},
        "expect": expect(200, ADMIN, outsider=403),
    },
    ("POST", f"{BASE}/{{notification_id}}/read"): {
        "request": lambda w: {"path": f"{BASE}/{pm_notification(w).pk}/read"},
        "expect": expect(200, {"project_manager"}, denied=404),
    },
}
