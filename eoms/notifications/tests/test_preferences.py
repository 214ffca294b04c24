"""Per-user settings: email per kind, quiet hours (email held until they end), the page and the API
that change them, audited."""

import re
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine

from eoms.core import relay
from eoms.core.errors import ValidationFailed
from eoms.core.models import AuditEntry
from eoms.notifications.models import Delivery, DeliveryState, Notification, NotificationKind, NotificationPreferences
from eoms.notifications.selectors import get_notification_preferences
from eoms.notifications.services import send_deliveries, set_notification_preferences
from eoms.orders.state import OrderState

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]
SHANGHAI = ZoneInfo("Asia/Shanghai")
NONE_SENT = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
ONE_SENT = {"sent": 1, "retry": 0, "failed": 0, "skipped": 0}


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=SHANGHAI)


def deliver(capture) -> None:
    with capture(execute=True):
        relay.drain(relay.InProcessTransport())


# ------------------------------------------------------------------------------------ the rules


def test_defaults_every_channel_on_and_no_quiet_hours(world):
    prefs = get_notification_preferences(actor=world.pm)
    assert prefs.pk is None or prefs._state.adding
    assert all(prefs.wants(kind, "email") for kind in NotificationKind.values)
    assert prefs.wants(NotificationKind.TASK_ASSIGNED, "in_app")
    assert prefs.quiet_end_after(at(23)) is None


@pytest.mark.parametrize(
    ("quiet", "moment", "end"),
    [
        ((time(22), time(7)), at(23, 30), at(7, day=3)),  # across midnight, before it
        ((time(22), time(7)), at(6, 59), at(7)),  # across midnight, after it
        ((time(22), time(7)), at(7), None),  # the end itself is outside
        ((time(22), time(7)), at(21, 59), None),
        ((time(22), time(7)), at(22), at(7, day=3)),  # the start is inside
        ((time(12), time(14)), at(13), at(14)),  # within a day
        ((time(12), time(14)), at(14, 1), None),
        ((time(9), time(9)), at(9), None),  # equal ends: none
    ],
)
def test_quiet_hours_end(world, quiet, moment, end):
    prefs = NotificationPreferences(user=world.pm, quiet_from=quiet[0], quiet_until=quiet[1])
    assert prefs.quiet_end_after(moment.astimezone(UTC)) == end


def test_saving_is_audited_with_what_changed_and_only_when_something_did(world):
    before = AuditEntry.objects.count()
    prefs = set_notification_preferences(
        actor=world.pm,
        channels={"order_transitioned": {"email": False}},
        quiet_from=time(22),
        quiet_until=time(7),
    )
    assert prefs.wants("order_transitioned", "email") is False
    assert prefs.wants("task_assigned", "email") is True
    entry = AuditEntry.objects.order_by("-id").first()
    assert AuditEntry.objects.count() == before + 1
    assert (entry.action, entry.object_type, entry.object_id, entry.actor_id) == (
        "notifications.preferences_changed",
        "notifications.preferences",
        str(world.pm.pk),
        world.pm.pk,
    )
    assert entry.changes == {
        "order_transitioned.email": [True, False],
        "quiet_from": ["", "22:00"],
        "quiet_until": ["", "07:00"],
    }
    # The same again: nothing written.
    again = set_notification_preferences(
        actor=world.pm, channels={"order_transitioned": {"email": False}}, quiet_from=time(22), quiet_until=time(7)
    )
    assert AuditEntry.objects.count() == before + 1
    assert again.version == 1
    # Kinds left out keep their setting; quiet hours removed.
    third = set_notification_preferences(actor=world.pm, channels={})
    assert third.wants("order_transitioned", "email") is False
    assert (third.quiet_from, third.quiet_until, third.version) == (None, None, 2)
    assert AuditEntry.objects.order_by("-id").first().changes == {
        "quiet_from": ["22:00", ""],
        "quiet_until": ["07:00", ""],
    }
    # Someone else's settings are untouched.
    assert get_notification_preferences(actor=world.approver).wants("order_transitioned", "email") is True


@pytest.mark.parametrize(
    ("channels", "quiet", "fields"),
    [
        ({"nonsense": {"email": False}}, (None, None), ["channels.nonsense"]),
        ({"task_assigned": {"in_app": False}}, (None, None), ["channels.task_assigned.in_app"]),
        ({"task_assigned": {"pigeon": True}}, (None, None), ["channels.task_assigned.pigeon"]),
        ({"task_assigned": {"email": "yes"}}, (None, None), ["channels.task_assigned.email"]),
        ({}, (time(22), None), ["quiet_until"]),
        ({}, (None, time(7)), ["quiet_from"]),
    ],
)
def test_invalid_settings_are_refused_naming_the_field(world, channels, quiet, fields):
    with pytest.raises(ValidationFailed) as caught:
        set_notification_preferences(actor=world.pm, channels=channels, quiet_from=quiet[0], quiet_until=quiet[1])
    assert caught.value.code == "notification.preferences_invalid"
    assert [e["field"] for e in caught.value.errors] == fields
    assert not NotificationPreferences.objects.exists()


# ------------------------------------------------------------------------------ their effect


def test_email_off_for_a_kind_keeps_the_inbox(world, smtp, django_capture_on_commit_callbacks):
    set_notification_preferences(actor=world.approver, channels={"task_assigned": {"email": False}})
    world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    assert Notification.objects.filter(recipient=world.approver).count() == 1
    assert Delivery.objects.count() == 0
    assert smtp.received == []


def test_quiet_hours_hold_email_until_they_end(world, smtp, django_capture_on_commit_callbacks):
    set_notification_preferences(actor=world.approver, channels={}, quiet_from=time(22), quiet_until=time(7))
    with time_machine.travel(at(23, 15), tick=False):
        world.order(OrderState.PENDING_APPROVAL)
        deliver(django_capture_on_commit_callbacks)
        assert Notification.objects.filter(recipient=world.approver).count() == 1  # the inbox at once
        delivery = Delivery.objects.get()
        assert delivery.due_at == at(7, day=3)
        assert delivery.state == DeliveryState.PENDING
        assert send_deliveries() == NONE_SENT
    with time_machine.travel(at(6, 59, day=3), tick=False):
        assert send_deliveries() == NONE_SENT
    assert smtp.received == []
    with time_machine.travel(at(7, 0, day=3), tick=False):
        assert send_deliveries() == ONE_SENT
    assert [r.rcpt_tos for r in smtp.received] == [["approver1@example.com"]]


def test_outside_quiet_hours_email_goes_at_once(world, smtp, django_capture_on_commit_callbacks):
    set_notification_preferences(actor=world.approver, channels={}, quiet_from=time(22), quiet_until=time(7))
    with time_machine.travel(at(10), tick=False):
        world.order(OrderState.PENDING_APPROVAL)
        deliver(django_capture_on_commit_callbacks)
    assert len(smtp.received) == 1


# ------------------------------------------------------------------------------------ the page


@pytest.fixture
def pm(client, world):
    client.force_login(world.pm)
    return client


def test_the_page_shows_and_saves_my_settings(pm, world):
    page = pm.get("/notifications/preferences/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="task_assigned__email"' in html
    assert len(re.findall(r'<input [^>]*role="switch"[^>]* checked>', html)) == len(NotificationKind.values)
    assert "Asia/Shanghai" in html
    data = {f"{kind}__email": "on" for kind in NotificationKind.values if kind != "cc_received"}
    response = pm.post("/notifications/preferences/", {**data, "quiet_from": "21:30", "quiet_until": "08:00"})
    assert response.status_code == 302
    assert response["Location"] == "/notifications/preferences/"
    prefs = NotificationPreferences.objects.get(user=world.pm)
    assert prefs.wants("cc_received", "email") is False
    assert prefs.wants("task_assigned", "email") is True
    assert (prefs.quiet_from, prefs.quiet_until) == (time(21, 30), time(8))
    html = pm.get("/notifications/preferences/").content.decode()
    assert 'value="21:30"' in html and 'value="08:00"' in html
    assert "Notification settings saved." in html
    assert len(re.findall(r'<input [^>]*role="switch"[^>]* checked>', html)) == len(NotificationKind.values) - 1


def test_the_page_refuses_half_quiet_hours(pm, world):
    response = pm.post("/notifications/preferences/", {"quiet_from": "22:00"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "Give both the start and the end of the quiet hours, or neither." in html
    assert "is-invalid" in html
    assert not NotificationPreferences.objects.exists()


def test_the_page_in_chinese_on_a_phone_layout(pm, world):
    html = pm.get("/notifications/preferences/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert '<h2 class="page-title">通知设置</h2>' in html
    assert "分配给我的审批任务" in html
    assert "免打扰时段" in html
    # Stacked on a phone: each kind takes the full width above its switches.
    assert html.count('class="col-12 col-sm"') == len(NotificationKind.values)


# ------------------------------------------------------------------------------------- the API


def test_the_api_reads_and_changes_my_settings_only(client, world):
    client.force_login(world.pm)
    body = client.get("/api/v1/notifications/preferences").json()
    assert body == {
        "channels": {
            kind: {"email": True, "dingtalk": True, "wecom": True, "sms": kind in ("task_assigned", "task_reminder")}
            for kind in NotificationKind.values
        },
        "quiet_from": None,
        "quiet_until": None,
        "email_digest": False,
        "version": 1,
    }
    response = client.put(
        "/api/v1/notifications/preferences",
        {"channels": {"task_decided": {"email": False}}, "quiet_from": "22:00", "quiet_until": "07:00"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["channels"]["task_decided"] == {
        "email": False,
        "dingtalk": True,
        "wecom": True,
        "sms": False,
    }
    assert (response.json()["quiet_from"], response.json()["quiet_until"]) == ("22:00:00", "07:00:00")
    refused = client.put(
        "/api/v1/notifications/preferences",
        {"channels": {"task_decided": {"in_app": False}}},
        content_type="application/json",
    )
    assert refused.status_code == 422
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "notification.preferences_invalid"
    assert refused.json()["errors"] == [
        {"field": "channels.task_decided.in_app", "message": "The in-app inbox is always on."}
    ]
    assert NotificationPreferences.objects.filter(user=world.approver).count() == 0


def test_configured_channels_get_their_switches(pm, world, settings):
    settings.DINGTALK_WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=x"
    settings.SMS_PROVIDER = "console"
    html = pm.get("/notifications/preferences/").content.decode()
    assert 'name="task_assigned__dingtalk"' in html and 'name="task_assigned__sms"' in html
    assert 'name="task_assigned__wecom"' not in html
    # Text messages start off except for a task waiting for the user.
    checked = set(re.findall(r'<input [^>]*name="(\w+__sms)"[^>]* checked>', html))
    assert checked == {"task_assigned__sms", "task_reminder__sms"}
    pm.post("/notifications/preferences/", {"task_assigned__email": "on", "cc_received__sms": "on"})
    prefs = NotificationPreferences.objects.get(user=world.pm)
    assert {k for k in NotificationKind.values if prefs.wants(k, "sms")} == {"cc_received"}
    assert prefs.wants("task_assigned", "wecom") is True  # not shown, kept
    assert prefs.wants("task_assigned", "dingtalk") is False
