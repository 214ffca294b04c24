"""Deliveries that failed for good are the notifications' dead letters: administrators find them
from the dead-letter page, send them again once the channel works, or discard them; audited each,
through the pages and the API. Everyone else: 403."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from eoms.core import relay
from eoms.core.models import AuditEntry
from eoms.notifications.models import Delivery, DeliveryState, Notification
from eoms.notifications.services import send_deliveries
from eoms.orders.state import OrderState

from .api_matrix import failed_delivery
from .conftest import free_port

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]
BASE = "/api/v1/notifications/deliveries"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def fail_an_email(world, settings, capture) -> Delivery:
    """A task email to the approver while the mail server is down, with one attempt allowed."""
    working = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()
    settings.NOTIFY_MAX_ATTEMPTS = 1
    world.order(OrderState.PENDING_APPROVAL)
    with capture(execute=True):
        relay.drain(relay.InProcessTransport())
    settings.EMAIL_PORT = working
    return Delivery.objects.get()


def test_a_failed_email_is_found_from_the_dead_letter_page_and_sent_again(
    world, smtp, settings, django_capture_on_commit_callbacks
):
    delivery = fail_an_email(world, settings, django_capture_on_commit_callbacks)
    assert delivery.state == DeliveryState.FAILED
    assert "ConnectionRefusedError" in delivery.last_error
    admin = signed_in(world.admin)
    out = StringIO()
    call_command("outbox", "status", stdout=out)
    assert out.getvalue().splitlines()[-1] == "Notification deliveries that failed: 1 (/notifications/deliveries/)"

    page = admin.get("/dead-letters/").content.decode()
    link = re.search(
        r'<a class="[^"]*" href="/notifications/deliveries/" data-failure-source="notifications.deliveries">\s*'
        r'<span>([^<]+)</span>\s*<span class="badge[^"]*">(\d+)</span>',
        page,
    )
    assert link is not None and link.groups() == ("Notification deliveries that failed", "1")

    page = admin.get("/notifications/deliveries/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-delivery="{delivery.pk}"' in html
    assert "approver1@example.com" in html and "ConnectionRefusedError" in html

    audits = AuditEntry.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin.post("/notifications/deliveries/act/", {"ids": [str(delivery.pk)], "action": "retry"})
    assert (answer.status_code, answer["Location"]) == (302, "/notifications/deliveries/?state=failed")
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == (DeliveryState.SENT, 1, "")
    assert [m.rcpt_tos for m in smtp.received] == [["approver1@example.com"]]
    entry = AuditEntry.objects.order_by("-id").first()
    assert AuditEntry.objects.count() == audits + 1
    assert (entry.action, entry.object_id, entry.actor_id) == (
        "notifications.delivery_retried",
        str(delivery.pk),
        world.admin.pk,
    )
    assert "1 delivery will be sent again." in admin.get("/notifications/deliveries/").content.decode()


def test_a_discarded_delivery_is_never_sent(world, smtp, settings, django_capture_on_commit_callbacks):
    delivery = fail_an_email(world, settings, django_capture_on_commit_callbacks)
    admin = signed_in(world.admin)
    answer = admin.post("/notifications/deliveries/act/", {"ids": [str(delivery.pk)], "action": "discard"})
    assert answer.status_code == 302
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DISCARDED
    entry = AuditEntry.objects.order_by("-id").first()
    assert (entry.action, entry.changes["state"]) == ("notifications.delivery_discarded", ["failed", "discarded"])

    # Neither the periodic sender nor a retry takes it up again.
    assert send_deliveries() == {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    answer = admin.post("/notifications/deliveries/act/", {"ids": [str(delivery.pk)], "action": "retry"}, follow=True)
    html = answer.content.decode()
    assert "0 deliveries will be sent again." in html
    assert "1 was no longer failed and was left as it is." in html
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DISCARDED
    assert smtp.received == []
    html = admin.get("/notifications/deliveries/?state=discarded").content.decode()
    assert f'data-delivery="{delivery.pk}"' in html


def test_the_pages_refuse_everyone_but_administrators_and_bad_posts(world):
    delivery = failed_delivery(world)
    for user in (world.pm, world.auditor, world.finance):
        client = signed_in(user)
        assert client.get("/notifications/deliveries/").status_code == 403
        assert (
            client.post("/notifications/deliveries/act/", {"ids": [delivery.pk], "action": "discard"}).status_code
            == 403
        )
        assert "/notifications/deliveries/" not in client.get("/notifications/").content.decode()
    assert Client().get("/notifications/deliveries/").status_code == 302  # to the sign-in page
    admin = signed_in(world.admin)
    answer = admin.post("/notifications/deliveries/act/", {"ids": ["not-a-uuid"], "action": "retry"}, follow=True)
    assert "Tick at least one delivery first." in answer.content.decode()
    answer = admin.post("/notifications/deliveries/act/", {"ids": [delivery.pk], "action": "delete"}, follow=True)
    assert "Choose whether to send the deliveries again or to discard them." in answer.content.decode()
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED


def test_the_api_lists_failed_deliveries_with_mobile_numbers_masked(world):
    email = failed_delivery(world)
    sms = Delivery.objects.create(
        notification=email.notification,
        message_id=email.message_id,
        recipient=world.pm,
        channel="sms",
        address="13812345678",
        state=DeliveryState.FAILED,
        due_at=timezone.now(),
        attempts=5,
        last_error="SmsError: the provider answered isv.BUSINESS_LIMIT_CONTROL",
        created_at=timezone.now(),
    )
    admin = signed_in(world.admin)
    body = admin.get(BASE).json()
    assert body["count"] == 2
    by_channel = {row["channel"]: row for row in body["results"]}
    assert by_channel["sms"]["address"] == "138****5678"
    assert by_channel["email"]["address"] == "pm@example.com"
    assert by_channel["sms"] == {
        "id": str(sms.pk),
        "notification_id": str(email.notification_id),
        "kind": "order_transitioned",
        "title": "ORD-2026-000001 is now Approved",
        "recipient": world.pm.username,
        "channel": "sms",
        "address": "138****5678",
        "state": "failed",
        "attempts": 5,
        "last_error": "SmsError: the provider answered isv.BUSINESS_LIMIT_CONTROL",
        "created_at": by_channel["sms"]["created_at"],
        "due_at": by_channel["sms"]["due_at"],
        "sent_at": None,
    }
    assert "13812345678" not in admin.get("/notifications/deliveries/").content.decode()
    assert admin.get(f"{BASE}?state=discarded").json()["count"] == 0
    bad = admin.get(f"{BASE}?state=sent")
    assert (bad.status_code, bad["Content-Type"]) == (422, "application/problem+json")

    answer = admin.post(
        f"{BASE}/discard",
        {"ids": [str(sms.pk), str(sms.pk), str(Notification.objects.get().pk)]},
        content_type="application/json",
    )
    assert answer.json() == {"done": 1, "skipped": 1}
    entry = AuditEntry.objects.order_by("-id").first()
    assert entry.object_repr == "sms 138****5678"
    assert "13812345678" not in str(entry.changes)
    assert admin.get(BASE).json()["count"] == 1
    assert admin.get(f"{BASE}?state=discarded").json()["results"][0]["id"] == str(sms.pk)

    empty = admin.post(f"{BASE}/retry", {"ids": []}, content_type="application/json")
    assert (empty.status_code, empty["Content-Type"]) == (422, "application/problem+json")
    denied = signed_in(world.pm).post(f"{BASE}/retry", {"ids": [str(email.pk)]}, content_type="application/json")
    assert (denied.status_code, denied.json()["code"]) == (403, denied.json()["code"])
    email.refresh_from_db()
    assert email.state == DeliveryState.FAILED
