"""The daily email digest against the real SMTP server (aiosmtpd, conftest.smtp): a user who chose
it gets one email a day at the digest hour with the email notifications made before it, instead of
one email each; the inbox is unaffected; one digest per user and day however often the job runs."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from eoms.core import relay
from eoms.core.models import AuditEntry
from eoms.notifications.models import Delivery, DeliveryState, Digest, Notification, NotificationPreferences
from eoms.notifications.services import send_digests, set_notification_preferences
from eoms.orders.state import OrderState

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

NOTHING = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    """2026-03-<day> <hour>:<minute> in Shanghai (the company's time zone)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo("Asia/Shanghai"))


def deliver(capture) -> None:
    with capture(execute=True):
        relay.drain(relay.InProcessTransport())


def part(message, subtype: str) -> str:
    return message.get_body(preferencelist=(subtype,)).get_content().replace("\r\n", "\n")


@pytest.fixture
def digest_user(world, settings):
    settings.NOTIFY_DIGEST_HOUR = 8
    world.approver.language = "en"
    world.approver.display_name = "Li Approver"
    world.approver.save()
    set_notification_preferences(actor=world.approver, channels={}, email_digest=True)
    return world.approver


def test_one_digest_a_day_at_the_digest_hour(world, smtp, digest_user, django_capture_on_commit_callbacks):
    with time_machine.travel(shanghai(2, 10), tick=False):
        first = world.order(OrderState.PENDING_APPROVAL, title="一号工程")
        deliver(django_capture_on_commit_callbacks)
    with time_machine.travel(shanghai(2, 10, 5), tick=False):
        second = world.order(OrderState.PENDING_APPROVAL, title="二号工程")
        deliver(django_capture_on_commit_callbacks)
    assert smtp.received == []  # no email of its own
    assert Notification.objects.filter(recipient=digest_user, read_at__isnull=True).count() == 2  # inbox as ever
    assert list(Delivery.objects.values_list("state", flat=True)) == [DeliveryState.DIGEST] * 2

    with time_machine.travel(shanghai(2, 12), tick=False):
        assert send_digests() == NOTHING  # made after today's 08:00: tomorrow's digest
    with time_machine.travel(shanghai(3, 7, 59), tick=False):
        assert send_digests() == NOTHING
    with time_machine.travel(shanghai(3, 8, 0), tick=False):
        assert send_digests() == {**NOTHING, "sent": 1}
        assert send_digests() == NOTHING
    with time_machine.travel(shanghai(3, 18), tick=False):
        assert send_digests() == NOTHING

    (got,) = smtp.received
    assert got.rcpt_tos == ["approver1@example.com"]
    assert str(got.message["Subject"]).lstrip() == "EOMS daily digest 2026-03-03: 2 notifications"
    digest = Digest.objects.get()
    assert got.message["Message-ID"] == f"<digest-{digest.pk}@eoms.example.com>"
    text = part(got.message, "plain")
    assert text.startswith(
        "Hello Li Approver,\n\nYour notifications of the past day, as you chose (one email a day):\n"
    )
    tasks = {n.title: n.url for n in Notification.objects.filter(recipient=digest_user)}
    for order in (first, second):
        title = f"Approval needed: {order.number} {order.title}"
        assert f"* {title}\n  {order.number} {order.title} is waiting for your decision.\n" in text
        assert f"  https://eoms.example.com{tasks[title]}\n" in text
        assert f'<a href="https://eoms.example.com{tasks[title]}"' in part(got.message, "html")
    assert text.index(first.number) < text.index(second.number)  # in the order they came
    assert (digest.day.isoformat(), digest.state, digest.attempts) == ("2026-03-03", DeliveryState.SENT, 1)
    assert set(Delivery.objects.values_list("state", "digest_id")) == {(DeliveryState.SENT, digest.pk)}

    # Made after Tuesday's digest: in Wednesday's, alone.
    with time_machine.travel(shanghai(3, 9), tick=False):
        third = world.order(OrderState.PENDING_APPROVAL, title="三号工程")
        deliver(django_capture_on_commit_callbacks)
    with time_machine.travel(shanghai(3, 23), tick=False):
        assert send_digests() == NOTHING
    with time_machine.travel(shanghai(4, 8, 5), tick=False):
        assert send_digests() == {**NOTHING, "sent": 1}
        assert send_digests() == NOTHING
    assert len(smtp.received) == 2
    assert str(smtp.received[1].message["Subject"]).lstrip() == "EOMS daily digest 2026-03-04: 1 notification"
    assert third.number in part(smtp.received[1].message, "plain")
    assert first.number not in part(smtp.received[1].message, "plain")
    assert sorted(d.isoformat() for d in Digest.objects.values_list("day", flat=True)) == ["2026-03-03", "2026-03-04"]


def test_a_digest_in_chinese_and_others_keep_their_emails(world, smtp, digest_user, django_capture_on_commit_callbacks):
    digest_user.language = "zh-hans"
    digest_user.display_name = "李审批"
    digest_user.save()
    with time_machine.travel(shanghai(2, 10), tick=False):
        order = world.order(OrderState.PENDING_APPROVAL)
        deliver(django_capture_on_commit_callbacks)
        world.decide(order, "approve")
        deliver(django_capture_on_commit_callbacks)
    # The PM did not choose the digest: their emails go one by one, at once.
    assert {r.rcpt_tos[0] for r in smtp.received} == {"pm1@example.com"}
    before = len(smtp.received)
    with time_machine.travel(shanghai(3, 9), tick=False):
        assert send_digests() == {**NOTHING, "sent": 1}
    got = smtp.received[before]
    assert str(got.message["Subject"]).lstrip() == "EOMS 每日汇总 2026-03-03：1 条通知"
    text = part(got.message, "plain")
    assert text.startswith("李审批，您好：\n\n按您的设置（每天一封邮件），以下是过去一天的通知：\n")
    assert f"* 待审批：{order.number} 道路改造工程施工\n" in text
    assert '<html lang="zh-hans">' in part(got.message, "html")


def test_a_failed_digest_is_retried_and_sent_once(
    world, smtp, digest_user, settings, django_capture_on_commit_callbacks
):
    with time_machine.travel(shanghai(2, 10), tick=False):
        world.order(OrderState.PENDING_APPROVAL)
        deliver(django_capture_on_commit_callbacks)
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = 1  # nothing listens there
    with time_machine.travel(shanghai(3, 8), tick=False):
        assert send_digests() == {**NOTHING, "retry": 1}
        assert send_digests() == NOTHING  # backing off
    digest = Digest.objects.get()
    assert (digest.state, digest.attempts) == (DeliveryState.PENDING, 1)
    assert digest.last_error.startswith("ConnectionRefusedError")
    settings.EMAIL_PORT = port
    with time_machine.travel(shanghai(3, 8, 1), tick=False):
        assert send_digests() == {**NOTHING, "sent": 1}
    with time_machine.travel(shanghai(3, 9), tick=False):
        assert send_digests() == NOTHING
    assert len(smtp.received) == 1
    assert Digest.objects.count() == 1


def test_administrators_see_the_digests(client, world, smtp, digest_user, django_capture_on_commit_callbacks):
    with time_machine.travel(shanghai(2, 10), tick=False):
        world.order(OrderState.PENDING_APPROVAL)
        deliver(django_capture_on_commit_callbacks)
    with time_machine.travel(shanghai(3, 8), tick=False):
        send_digests()
    type(world.admin).objects.filter(pk=world.admin.pk).update(is_staff=True, is_superuser=True)
    world.admin.refresh_from_db()
    client.force_login(world.admin)
    response = client.get("/admin/notifications/digest/")
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    assert "approver1@example.com" in html
    assert client.get("/admin/notifications/digest/add/").status_code == 403


def test_the_switch_on_the_settings_page(client, world):
    client.force_login(world.pm)
    html = client.get("/notifications/preferences/").content.decode()
    assert 'name="email_digest"' in html
    assert "receive one email a day at 08:00 (Asia/Shanghai time)" in html
    response = client.post("/notifications/preferences/", {"task_assigned__email": "on", "email_digest": "on"})
    assert response.status_code == 302
    assert NotificationPreferences.objects.get(user=world.pm).email_digest is True
    entry = AuditEntry.objects.filter(action="notifications.preferences_changed").latest("id")
    assert entry.changes["email_digest"] == [False, True]
    api = client.put("/api/v1/notifications/preferences", {"quiet_from": None}, content_type="application/json")
    assert api.json()["email_digest"] is True  # left out: kept
    api = client.put("/api/v1/notifications/preferences", {"email_digest": False}, content_type="application/json")
    assert api.json()["email_digest"] is False
