"""The email channel against a real SMTP server (aiosmtpd, conftest.smtp): what arrives, in whose
language, linking where, once per event and recipient however often the event is delivered; and
what happens while the server is down."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.utils import timezone

from eoms.approvals.models import ApprovalTask
from eoms.core import relay
from eoms.core.models import OutboxMessage, ProcessedMessage
from eoms.notifications.models import Delivery, DeliveryState, Notification
from eoms.notifications.services import send_deliveries
from eoms.orders.state import OrderState

from .conftest import SMTP_PASSWORD, free_port

pytestmark = [
    pytest.mark.django_db,
    # The test server asks for a login over plain TCP on 127.0.0.1; production SMTP uses TLS.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]


def deliver(capture) -> None:
    """The relay's pass, then what the handlers left for after their commit (the email sender)."""
    with capture(execute=True):
        relay.drain(relay.InProcessTransport())


def subject_of(got) -> str:
    # Django folds a long non-ASCII subject right after "Subject:"; unfolded, it starts with the
    # folding space, which mail clients drop as well.
    return str(got.message["Subject"]).lstrip()


def part(message, subtype: str) -> str:
    return message.get_body(preferencelist=(subtype,)).get_content().replace("\r\n", "\n")


def test_a_task_email_in_english(world, smtp, django_capture_on_commit_callbacks):
    world.approver.language = "en"
    world.approver.display_name = "Li Approver"
    world.approver.save()
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    task = ApprovalTask.objects.get(instance__subject_id=str(order.id))
    link = f"https://eoms.example.com/approvals/tasks/{task.pk}/"

    assert len(smtp.received) == 1
    got = smtp.received[0]
    assert smtp.logins == ["eoms-mailer"]
    assert got.rcpt_tos == ["approver1@example.com"]
    assert got.mail_from == "eoms@eoms.example.com"
    assert got.message["To"] == "approver1@example.com"
    assert subject_of(got) == f"Approval needed: {order.number} 道路改造工程施工"
    delivery = Delivery.objects.get()
    assert got.message["Message-ID"] == f"<{delivery.pk}@eoms.example.com>"
    assert got.message["Auto-Submitted"] == "auto-generated"
    text = part(got.message, "plain")
    assert text.startswith("Hello Li Approver,\n\n")
    assert f"{order.number} 道路改造工程施工 is waiting for your decision." in text
    assert f"Open it in EOMS: {link}\n" in text
    assert "https://eoms.example.com/notifications/preferences/" in text
    html = part(got.message, "html")
    assert f'<a href="{link}"' in html
    assert '<html lang="en">' in html
    assert (delivery.state, delivery.attempts, delivery.address) == (DeliveryState.SENT, 1, "approver1@example.com")
    assert delivery.sent_at is not None


def test_a_task_email_in_chinese_and_nothing_secret(world, smtp, settings, django_capture_on_commit_callbacks):
    settings.SECRET_KEY = "django-secret-key-that-must-not-leak-0123456789"
    world.approver.language = "zh-hans"
    world.approver.display_name = "李审批"
    world.approver.save()
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    (got,) = smtp.received
    assert subject_of(got) == f"待审批：{order.number} 道路改造工程施工"
    text = part(got.message, "plain")
    assert text.startswith("李审批，您好：\n\n")
    assert f"{order.number} 道路改造工程施工 等待您的审批。" in text
    assert "在 EOMS 中打开： https://eoms.example.com/approvals/tasks/" in text
    html = part(got.message, "html")
    assert '<html lang="zh-hans">' in html
    assert "在 EOMS 中打开" in html
    raw = got.raw.decode("ascii", "replace")
    for secret in (SMTP_PASSWORD, settings.SECRET_KEY, "1000000.00", "1,000,000"):
        assert secret not in raw and secret not in text and secret not in html


def test_each_recipient_in_their_own_language(world, smtp, django_capture_on_commit_callbacks):
    world.pm.language = "zh-hans"
    world.pm.save()
    world.approver.language = "en"
    world.approver.save()
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    world.decide(order, "approve")
    deliver(django_capture_on_commit_callbacks)
    by_rcpt = {}
    for got in smtp.received:
        by_rcpt.setdefault(got.rcpt_tos[0], []).append(subject_of(got))
    subject = f"{order.number} 道路改造工程施工"
    assert by_rcpt["approver1@example.com"] == [f"Approval needed: {subject}"]
    assert sorted(by_rcpt["pm1@example.com"]) == sorted(
        [f"审批通过：{subject}", f"{order.number} 现为已批准", f"{world.approver.display_name} 已同意：{subject}"]
    )


def test_a_redelivered_event_sends_no_second_email(world, smtp, django_capture_on_commit_callbacks):
    world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    assert len(smtp.received) == 1
    message = OutboxMessage.objects.get(event_type="approvals.task_created")
    ProcessedMessage.objects.filter(message_id=message.message_id).delete()
    with django_capture_on_commit_callbacks(execute=True):
        relay.dispatch(message)
    assert send_deliveries() == {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    assert len(smtp.received) == 1
    assert Delivery.objects.count() == 1


def test_no_email_without_an_address_or_with_email_off(world, smtp, settings, django_capture_on_commit_callbacks):
    world.approver.email = ""
    world.approver.save()
    world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    assert Notification.objects.filter(recipient=world.approver).count() == 1
    assert Delivery.objects.count() == 0
    settings.NOTIFY_EMAIL = False
    order = world.order(OrderState.SIGNED)
    world.walk(order, "start_execution")
    deliver(django_capture_on_commit_callbacks)
    assert Notification.objects.filter(recipient=world.engineer).count() == 1
    assert Delivery.objects.count() == 0
    assert smtp.received == []


def test_server_down_retries_with_backoff_then_sends_once(world, smtp, settings, django_capture_on_commit_callbacks):
    working_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nobody listens there
    world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 1)
    assert delivery.last_error.startswith("ConnectionRefusedError")
    assert timedelta(seconds=59) < delivery.due_at - timezone.now() <= timedelta(minutes=1)
    assert send_deliveries() == {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}  # not due yet

    settings.EMAIL_PORT = working_port
    with time_machine.travel(timezone.now() + timedelta(minutes=1, seconds=1)):
        assert send_deliveries() == {"sent": 1, "retry": 0, "failed": 0, "skipped": 0}
        assert send_deliveries() == {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == (DeliveryState.SENT, 2, "")
    assert len(smtp.received) == 1


def test_after_the_last_attempt_a_delivery_fails_for_good(world, smtp, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_PORT = free_port()
    settings.NOTIFY_MAX_ATTEMPTS = 3
    world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    results = []
    for minutes in (2, 10):  # past the 1st (1 min) and 2nd (2 min) backoff
        with time_machine.travel(timezone.now() + timedelta(minutes=minutes)):
            results.append(send_deliveries())
    assert results == [
        {"sent": 0, "retry": 1, "failed": 0, "skipped": 0},
        {"sent": 0, "retry": 0, "failed": 1, "skipped": 0},
    ]
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 3)
    assert smtp.received == []


def test_a_claimed_delivery_is_not_sent_by_a_second_sender(world, smtp, django_capture_on_commit_callbacks):
    world.order(OrderState.PENDING_APPROVAL)
    with django_capture_on_commit_callbacks(execute=False):
        relay.drain(relay.InProcessTransport())
    delivery = Delivery.objects.get()
    # Another sender claimed it a moment ago and is talking to the server.
    Delivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.SENDING, claimed_at=timezone.now())
    assert send_deliveries() == {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    assert smtp.received == []
    # That sender died: after STALE_SENDING the row is sent again.
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        assert send_deliveries() == {"sent": 1, "retry": 0, "failed": 0, "skipped": 0}
    assert len(smtp.received) == 1


def test_email_settings_come_from_the_environment():
    env = {
        **os.environ,
        "EOMS_EMAIL_HOST": "smtp.example.com",
        "EOMS_EMAIL_PORT": "465",
        "EOMS_EMAIL_USER": "mailer",
        "EOMS_EMAIL_PASSWORD": "pw",
        "EOMS_EMAIL_USE_SSL": "true",
        "EOMS_EMAIL_FROM": "EOMS <noreply@example.com>",
        "EOMS_PUBLIC_URL": "https://eoms.example.com/",
    }
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_HOST_PASSWORD, s.EMAIL_USE_SSL, "
        "s.EMAIL_USE_TLS, s.NOTIFY_EMAIL, s.PUBLIC_URL, s.DEFAULT_FROM_EMAIL)"
    )
    out = (
        subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "DJANGO_SETTINGS_MODULE": "eoms.settings"},
            capture_output=True,
            text=True,
            check=True,
            cwd=django_settings.BASE_DIR.parent,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out == "smtp.example.com 465 mailer pw True False True https://eoms.example.com EOMS <noreply@example.com>"
    env.pop("EOMS_EMAIL_HOST")
    out = (
        subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "DJANGO_SETTINGS_MODULE": "eoms.settings"},
            capture_output=True,
            text=True,
            check=True,
            cwd=django_settings.BASE_DIR.parent,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out == "465 mailer pw True False False https://eoms.example.com EOMS <noreply@example.com>"  # no host: off


def test_an_administrator_sends_a_failed_delivery_again(world, smtp, settings, django_capture_on_commit_callbacks):
    from eoms.core.errors import PermissionDenied
    from eoms.core.models import AuditEntry
    from eoms.notifications.services import retry_deliveries

    working_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()
    settings.NOTIFY_MAX_ATTEMPTS = 1
    world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.FAILED
    with pytest.raises(PermissionDenied):
        retry_deliveries(actor=world.pm, delivery_ids=[delivery.pk])
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED

    settings.EMAIL_PORT = working_port
    audits = AuditEntry.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        assert retry_deliveries(actor=world.admin, delivery_ids=[delivery.pk]) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.SENT, 1)
    assert len(smtp.received) == 1
    entry = AuditEntry.objects.order_by("-id").first()
    assert AuditEntry.objects.count() == audits + 1
    assert (entry.action, entry.object_id, entry.actor_id) == (
        "notifications.delivery_retried",
        str(delivery.pk),
        world.admin.pk,
    )
    # Only failed ones: a sent delivery is left alone.
    assert retry_deliveries(actor=world.admin, delivery_ids=[delivery.pk]) == 0
