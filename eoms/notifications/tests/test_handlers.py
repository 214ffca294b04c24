"""Who is told what, from real events of real orders and approvals delivered by the relay."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from eoms.accounts.roles import ProjectRole, Role
from eoms.accounts.services import set_delegation
from eoms.approvals.models import ApprovalTask, TaskKind
from eoms.core import relay
from eoms.core.models import OutboxMessage, ProcessedMessage
from eoms.notifications.models import Notification, NotificationKind
from eoms.orders.state import OrderState
from eoms.testing.factories import MembershipFactory, UserFactory
from eoms.testing.world import publish_flow

pytestmark = pytest.mark.django_db


def deliver() -> int:
    return relay.drain(relay.InProcessTransport())


def told(user) -> list[tuple[str, str, str, str]]:
    return [
        (n.kind, n.title, n.body, n.url)
        for n in Notification.objects.filter(recipient=user).order_by("created_at", "id")
    ]


def task_of(order, user) -> ApprovalTask:
    return ApprovalTask.objects.get(instance__subject_id=str(order.id), assignee=user)


def test_task_assigned_tells_the_assignee_with_a_link_to_the_task(world):
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver()
    task = task_of(order, world.approver)
    subject = f"{order.number} 道路改造工程施工"
    assert told(world.approver) == [
        (
            NotificationKind.TASK_ASSIGNED,
            f"Approval needed: {subject}",
            f"{subject} is waiting for your decision.",
            f"/approvals/tasks/{task.pk}/",
        )
    ]
    # The PM made every change so far: nothing for them; nobody else is involved.
    assert told(world.pm) == []
    assert Notification.objects.count() == 1
    n = Notification.objects.get()
    assert n.read_at is None
    assert n.event_type == "approvals.task_created"
    assert n.message_id == OutboxMessage.objects.get(event_type="approvals.task_created").message_id


def test_a_redelivered_event_notifies_nobody_twice(world):
    world.order(OrderState.PENDING_APPROVAL)
    deliver()
    message = OutboxMessage.objects.get(event_type="approvals.task_created")
    relay.dispatch(message)  # the relay died after the handler committed, before marking it sent
    assert Notification.objects.filter(recipient=world.approver).count() == 1
    # Even with the handler's ProcessedMessage row gone, the (message, recipient) rule holds.
    ProcessedMessage.objects.filter(message_id=message.message_id).delete()
    relay.dispatch(message)
    assert Notification.objects.filter(recipient=world.approver).count() == 1
    # One row for notifications' handler (other contexts, e.g. webhooks, handle the event too).
    assert (
        ProcessedMessage.objects.filter(message_id=message.message_id, handler__startswith="notifications.").count()
        == 1
    )


def test_a_delegated_task_says_on_behalf_of_whom(world):
    deputy = UserFactory(username="deputy1", display_name="代理人", roles=[Role.APPROVER])
    world.approver.display_name = "审批人甲"
    world.approver.save()
    today = timezone.localdate()
    set_delegation(actor=world.approver, user=world.approver, deputy=deputy, starts_on=today, ends_on=today)
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver()
    task = task_of(order, deputy)
    assert told(deputy) == [
        (
            NotificationKind.TASK_ASSIGNED,
            f"Approval needed: {order.number} 道路改造工程施工",
            f"{order.number} 道路改造工程施工 is waiting for your decision. "
            "You decide on behalf of 审批人甲, who is away.",
            f"/approvals/tasks/{task.pk}/",
        )
    ]
    assert told(world.approver) == []


def test_a_decision_tells_the_initiator_and_the_stage_change_tells_the_pm(world):
    world.approver.display_name = "审批人甲"
    world.approver.save()
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver()
    world.decide(order, "approve")
    deliver()
    subject = f"{order.number} 道路改造工程施工"
    url = f"/orders/{order.pk}/"
    assert sorted(told(world.pm)) == sorted(
        [
            (
                NotificationKind.TASK_DECIDED,
                f"Approved by 审批人甲: {subject}",
                f"审批人甲 approved {subject} at their step.",
                url,
            ),
            (
                NotificationKind.APPROVAL_COMPLETED,
                f"Approval passed: {subject}",
                f"The approval of {subject} has ended: approved.",
                url,
            ),
            (
                NotificationKind.ORDER_TRANSITIONED,
                f"{order.number} is now Approved",
                f"审批人甲 moved order {order.number} from Pending approval to Approved.",
                url,
            ),
        ]
    )
    # The approver acted: told of their task only, not of the change they made.
    assert [k for k, *_ in told(world.approver)] == [NotificationKind.TASK_ASSIGNED]


def test_a_rejection_says_so(world):
    order = world.order(OrderState.PENDING_APPROVAL)
    world.decide(order, "reject")
    deliver()
    subject = f"{order.number} 道路改造工程施工"
    titles = {kind: (title, body) for kind, title, body, _url in told(world.pm)}
    name = world.approver.display_name
    assert titles[NotificationKind.TASK_DECIDED] == (f"Rejected by {name}: {subject}", f"{name} rejected {subject}.")
    assert titles[NotificationKind.APPROVAL_COMPLETED] == (
        f"Approval rejected: {subject}",
        f"The approval of {subject} has ended: rejected.",
    )


def test_the_new_stage_owner_and_every_project_manager_are_told_but_not_the_actor(world):
    second_pm = UserFactory(username="pm3", roles=[Role.PROJECT_MANAGER])
    MembershipFactory(user=second_pm, project=world.project, role=ProjectRole.PM)
    order = world.order(OrderState.SIGNED)
    deliver()
    Notification.objects.all().delete()
    world.walk(order, "start_execution")  # by pm1; the engineer owns execution
    deliver()
    pm_name = world.pm.display_name
    expected = (
        NotificationKind.ORDER_TRANSITIONED,
        f"{order.number} is now In execution",
        f"{pm_name} moved order {order.number} from Signed to In execution.",
        f"/orders/{order.pk}/",
    )
    assert told(world.engineer) == [expected]
    assert told(second_pm) == [expected]
    assert told(world.pm) == []
    assert Notification.objects.count() == 2


def test_an_inactive_user_is_not_told(world):
    world.approver.is_active = False
    world.approver.save()
    other = UserFactory(username="approver2", roles=[Role.APPROVER])
    world.order(OrderState.PENDING_APPROVAL)
    deliver()
    assert told(world.approver) == []
    assert [k for k, *_ in told(other)] == [NotificationKind.TASK_ASSIGNED]


def test_a_cc_tells_each_user_copied_with_a_link_to_their_copy(world):
    publish_flow(
        world.admin,
        {
            "nodes": [
                {
                    "type": "approval",
                    "id": "review",
                    "name": "Review",
                    "approvers": {"source": "role", "role": "approver"},
                },
                {
                    "type": "cc",
                    "id": "tell",
                    "name": "Tell finance",
                    "recipients": {"source": "users", "users": [str(world.finance.pk), str(world.auditor.pk)]},
                },
            ]
        },
        key="with-cc",
        name="With CC",
        is_default=True,
        priority=1,
    )
    order = world.order(OrderState.PENDING_APPROVAL)
    world.decide(order, "approve")
    deliver()
    subject = f"{order.number} 道路改造工程施工"
    for user in (world.finance, world.auditor):
        cc = ApprovalTask.objects.get(assignee=user, kind=TaskKind.CC)
        assert told(user) == [
            (
                NotificationKind.CC_RECEIVED,
                f"For your information: {subject}",
                f"You were copied on the approval of {subject}.",
                f"/approvals/tasks/{cc.pk}/",
            )
        ]


def test_rendered_in_the_recipients_language(world, settings):
    world.approver.language = "zh-hans"
    world.approver.save()
    world.pm.language = "en"
    world.pm.save()
    settings.LANGUAGE_CODE = "zh-hans"
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver()
    subject = f"{order.number} 道路改造工程施工"
    ((_kind, title, body, _url),) = told(world.approver)
    assert (title, body) == (f"待审批：{subject}", f"{subject} 等待您的审批。")
    world.decide(order, "approve")
    deliver()
    titles = {kind: title for kind, title, *_ in told(world.pm)}
    assert titles[NotificationKind.APPROVAL_COMPLETED] == f"Approval passed: {subject}"
    # No preference: the site's language.
    world.pm.language = ""
    world.pm.save()
    order2 = world.order(OrderState.SIGNED)
    Notification.objects.all().delete()
    world.walk(order2, "start_execution")
    deliver()
    ((_kind, title, body, _url),) = told(world.engineer)
    assert title == f"{order2.number} 现为执行中"


def test_a_due_time_is_shown_in_local_time(world):
    publish_flow(
        world.admin,
        {
            "nodes": [
                {
                    "type": "approval",
                    "id": "review",
                    "name": "Review",
                    "approvers": {"source": "role", "role": "approver"},
                    "sla_hours": 4,
                }
            ]
        },
        key="sla",
        name="With SLA",
        is_default=True,
        priority=1,
    )
    world.order(OrderState.PENDING_APPROVAL)
    deliver()
    message = OutboxMessage.objects.get(event_type="approvals.task_created")
    due = timezone.localtime(timezone.datetime.fromisoformat(message.payload["due_at"]))
    assert due > timezone.now() + timedelta(hours=3)
    ((_kind, _title, body, _url),) = told(world.approver)
    assert body.endswith(f" Due by {due:%Y-%m-%d %H:%M}.")


SLA_FLOW = {
    "nodes": [
        {
            "type": "approval",
            "id": "review",
            "name": "Review",
            "approvers": {"source": "role", "role": "approver"},
            "sla_hours": "2",
            "remind_after_hours": "1",
            "on_timeout": "approve",
        }
    ]
}
MONDAY_10 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a working day


def test_the_sla_reminder_tells_the_assignee_once_however_often_the_timers_run(world):
    from eoms.approvals.services import process_timers

    publish_flow(world.admin, SLA_FLOW, key="sla-remind", name="SLA", is_default=True, priority=1)
    with time_machine.travel(MONDAY_10, tick=False):
        order = world.order(OrderState.PENDING_APPROVAL)
        deliver()
    task = task_of(order, world.approver)
    with time_machine.travel(MONDAY_10 + timedelta(hours=1, minutes=30), tick=False):
        process_timers()
        process_timers()
        deliver()
    subject = f"{order.number} 道路改造工程施工"
    assert told(world.approver)[1:] == [
        (
            NotificationKind.TASK_REMINDER,
            f"Reminder: {subject}",
            f"{subject} is still waiting for your decision.",
            f"/approvals/tasks/{task.pk}/",
        )
    ]


def test_a_nudge_tells_the_pending_approvers_who_asks(world):
    from eoms.approvals.services import nudge_approval

    order = world.order(OrderState.PENDING_APPROVAL)
    deliver()
    task = task_of(order, world.approver)
    nudge_approval(actor=world.pm, instance_id=task.instance_id)
    deliver()
    subject = f"{order.number} 道路改造工程施工"
    assert told(world.approver)[1:] == [
        (
            NotificationKind.TASK_REMINDER,
            f"Reminder: {subject}",
            f"{world.pm.display_name} asks you to decide on {subject}.",
            f"/approvals/tasks/{task.pk}/",
        )
    ]
    assert told(world.pm) == []
