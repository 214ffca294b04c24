"""Stage-deadline reminders (the periodic job notifications.stage_deadlines): who is told, once per
deadline, recipient and channel however often the job runs; a moved deadline or a new stage is a
new reminder; settled and cancelled orders are not reminded."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from eoms.accounts.roles import ProjectRole
from eoms.core import periodic
from eoms.notifications.models import Delivery, DeliveryState, Notification, NotificationKind
from eoms.notifications.reminders import remind_stage_deadlines, reminder_id
from eoms.orders.state import OrderState
from eoms.testing.factories import MembershipFactory, UserFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

# Monday 2026-03-02 10:00 in Shanghai; an order created then is INITIATED for 5 days: due Saturday
# 2026-03-07 10:00 (02:00 UTC).
MONDAY = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
DUE = datetime(2026, 3, 7, 2, 0, tzinfo=UTC)


def at(moment):
    return time_machine.travel(moment, tick=False)


@pytest.fixture
def order(world):
    """An order of world.project whose stage owner is the engineer; the project has two managers
    (world.pm, who made the order, and a second one)."""
    second = UserFactory(username="second_pm", display_name="第二经理", language="en")
    MembershipFactory(user=second, project=world.project, role=ProjectRole.PM)
    world.engineer.language = "en"
    world.engineer.save()
    with at(MONDAY):
        made = world.order()
        made = world.update(made, stage_owner=world.engineer)
    assert made.stage_deadline == DUE
    return made


def told(order) -> list[tuple[str, str, str, str, str]]:
    return sorted(
        (n.recipient.username, n.kind, n.title, n.body, n.url)
        for n in Notification.objects.filter(event_type__startswith="notifications.stage").select_related("recipient")
    )


def test_near_then_overdue_once_each_however_often_it_runs(world, order):
    world.pm.language = "zh-hans"
    world.pm.save()
    with at(DUE - timedelta(hours=25)):  # not yet within 24 hours
        assert remind_stage_deadlines() == {"near": 0, "overdue": 0}
    with at(DUE - timedelta(hours=23)):
        assert remind_stage_deadlines() == {"near": 3, "overdue": 0}
        assert remind_stage_deadlines() == {"near": 0, "overdue": 0}
    with at(DUE - timedelta(minutes=1)):
        assert remind_stage_deadlines() == {"near": 0, "overdue": 0}
    subject = f"{order.number} 道路改造工程施工"
    url = f"/orders/{order.pk}/"
    near = [
        (
            world.engineer.username,
            NotificationKind.STAGE_DEADLINE_NEAR,
            f"Deadline near: {subject}",
            f"Order {subject} is due to leave the stage Initiated by 2026-03-07 10:00.",
            url,
        ),
        (
            "second_pm",
            NotificationKind.STAGE_DEADLINE_NEAR,
            f"Deadline near: {subject}",
            f"Order {subject} is due to leave the stage Initiated by 2026-03-07 10:00.",
            url,
        ),
        (
            world.pm.username,
            NotificationKind.STAGE_DEADLINE_NEAR,
            f"截止时间临近：{subject}",
            f"订单 {subject} 应在 2026-03-07 10:00 前完成“已立项”阶段。",
            url,
        ),
    ]
    assert told(order) == sorted(near)
    with at(DUE + timedelta(minutes=1)):
        assert remind_stage_deadlines() == {"near": 0, "overdue": 3}
    with at(DUE + timedelta(days=3)):
        assert remind_stage_deadlines() == {"near": 0, "overdue": 0}
    overdue = [n for n in told(order) if n[1] == NotificationKind.STAGE_OVERDUE]
    assert [n[0] for n in overdue] == sorted([world.engineer.username, "second_pm", world.pm.username])
    assert ("second_pm", f"Overdue: {subject}") in [(n[0], n[2]) for n in overdue]
    assert f"Order {subject} was due to leave the stage Initiated by 2026-03-07 10:00." in [
        n[3] for n in overdue if n[0] == "second_pm"
    ]
    message_ids = set(Notification.objects.values_list("message_id", flat=True))
    assert message_ids == {
        reminder_id(NotificationKind.STAGE_DEADLINE_NEAR, order),
        reminder_id(NotificationKind.STAGE_OVERDUE, order),
    }


def test_a_moved_deadline_and_a_new_stage_are_new_reminders(world, order):
    with at(DUE + timedelta(hours=1)):
        # First seen already late: the overdue reminder only, not the near one as well.
        assert remind_stage_deadlines() == {"near": 0, "overdue": 3}
        moved = DUE + timedelta(days=2)
        world.update(order, stage_deadline=moved)
        assert remind_stage_deadlines() == {"near": 0, "overdue": 0}  # two days away now
    with at(moved - timedelta(hours=2)):
        assert remind_stage_deadlines() == {"near": 3, "overdue": 0}
        assert remind_stage_deadlines() == {"near": 0, "overdue": 0}
        world.walk(order, "start_quotation")  # QUOTING: 10 days, owner by the transition's rule
        order.refresh_from_db()
        assert order.state == OrderState.QUOTING
        assert remind_stage_deadlines() == {"near": 0, "overdue": 0}
    assert order.stage_owner == world.pm
    with at(order.stage_deadline - timedelta(hours=1)):
        # The new stage's owner is world.pm, also a manager: told once; second_pm as the other manager.
        assert remind_stage_deadlines() == {"near": 2, "overdue": 0}
    near = Notification.objects.filter(kind=NotificationKind.STAGE_DEADLINE_NEAR)
    assert near.values("message_id").distinct().count() == 2
    assert set(
        near.filter(message_id=reminder_id(NotificationKind.STAGE_DEADLINE_NEAR, order)).values_list(
            "recipient__username", flat=True
        )
    ) == {world.pm.username, "second_pm"}


def test_settled_cancelled_and_inactive_are_left_alone(world, order):
    world.walk(order, "cancel")
    other = UserFactory(username="gone")
    MembershipFactory(user=other, project=world.project, role=ProjectRole.PM)
    other.is_active = False
    other.save()
    with at(MONDAY):
        live = world.order(title="第二个订单")
    with at(DUE + timedelta(days=1)):
        assert remind_stage_deadlines() == {"near": 0, "overdue": 2}
    assert {n.message_id for n in Notification.objects.all()} == {reminder_id(NotificationKind.STAGE_OVERDUE, live)}
    assert not Notification.objects.filter(recipient=other).exists()


def test_one_email_per_reminder_and_recipient_and_a_tick_runs_it(
    world, order, smtp, django_capture_on_commit_callbacks
):
    assert "notifications.stage_deadlines" in {job.name for job in periodic.jobs()}
    with at(DUE - timedelta(hours=1)), django_capture_on_commit_callbacks(execute=True):
        out = StringIO()
        call_command("tick", stdout=out)
        call_command("tick", stdout=out)
    assert out.getvalue().count("notifications.stage_deadlines: {'near': 3, 'overdue': 0}") == 1
    assert out.getvalue().count("notifications.stage_deadlines: {'near': 0, 'overdue': 0}") == 1
    assert Delivery.objects.filter(channel="email").count() == 3
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SENT}
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == sorted(
        [world.engineer.email, world.pm.email, "second_pm@example.com"]
    )
