"""Who is told when an approval is withdrawn or times out, and when a webhook is paused: real events
of real orders, approvals and webhooks, delivered by the relay."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from eoms.approvals.models import ApprovalTask
from eoms.core import relay
from eoms.notifications.models import Notification, NotificationKind
from eoms.orders.state import OrderState
from eoms.testing.world import publish_flow

from .conftest import free_port

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a working day


def deliver() -> int:
    return relay.drain(relay.InProcessTransport())


def told(user, kind) -> list[tuple[str, str, str]]:
    return [
        (n.title, n.body, n.url)
        for n in Notification.objects.filter(recipient=user, kind=kind).order_by("created_at", "id")
    ]


def test_a_withdrawn_approval_tells_whoever_had_it_waiting(world):
    from eoms.approvals.services import withdraw_approval

    world.approver.display_name = "审批人甲"
    world.approver.save()
    world.pm.display_name = "项目经理"
    world.pm.save()
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver()
    task = ApprovalTask.objects.get(instance__subject_id=str(order.id), assignee=world.approver)
    withdraw_approval(actor=world.pm, instance_id=task.instance_id, comment="改一下")
    deliver()
    deliver()  # a second pass changes nothing
    subject = f"{order.number} 道路改造工程施工"
    assert told(world.approver, NotificationKind.APPROVAL_WITHDRAWN) == [
        (
            f"Withdrawn: {subject}",
            f"项目经理 withdrew the approval of {subject}; it no longer needs your decision.",
            f"/orders/{order.pk}/",
        )
    ]
    assert Notification.objects.filter(kind=NotificationKind.APPROVAL_WITHDRAWN).count() == 1


def test_an_order_cancelled_in_approval_tells_the_approver_in_their_language(world):
    world.approver.language = "zh-hans"
    world.approver.save()
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver()
    world.walk(order, "cancel")
    deliver()
    subject = f"{order.number} 道路改造工程施工"
    assert told(world.approver, NotificationKind.APPROVAL_WITHDRAWN) == [
        (
            f"已撤回：{subject}",
            f"{world.pm.display_name} 撤回了 {subject} 的审批，无需您再处理。",
            f"/orders/{order.pk}/",
        )
    ]
    assert told(world.pm, NotificationKind.APPROVAL_WITHDRAWN) == []


def _sla_flow(on_timeout: str) -> dict:
    return {
        "nodes": [
            {
                "type": "approval",
                "id": "review",
                "name": "技术评审",
                "approvers": {"source": "role", "role": "approver"},
                "sla_hours": "2",
                "on_timeout": on_timeout,
            }
        ]
    }


@pytest.mark.parametrize(
    ("on_timeout", "language", "title", "body"),
    [
        ("approve", "en", "Timed out: {s}", "The step “技术评审” of {s} timed out and was approved automatically."),
        ("reject", "zh-hans", "审批超时：{s}", "{s} 的“技术评审”环节已超时，已自动驳回。"),
        ("none", "en", "Timed out: {s}", "The step “技术评审” of {s} timed out; its approvers were reminded."),
    ],
)
def test_a_timed_out_step_tells_the_initiator_what_the_rule_did(world, on_timeout, language, title, body):
    from eoms.approvals.services import process_timers

    world.pm.language = language
    world.pm.save()
    publish_flow(world.admin, _sla_flow(on_timeout), key="sla", name="SLA", is_default=True, priority=1)
    with time_machine.travel(MONDAY_10, tick=False):
        order = world.order(OrderState.PENDING_APPROVAL)
        deliver()
    with time_machine.travel(MONDAY_10 + timedelta(hours=2, minutes=1), tick=False):
        process_timers()
        process_timers()
        deliver()
    subject = f"{order.number} 道路改造工程施工"
    assert told(world.pm, NotificationKind.APPROVAL_TIMED_OUT) == [
        (title.format(s=subject), body.format(s=subject), f"/orders/{order.pk}/")
    ]
    assert Notification.objects.filter(kind=NotificationKind.APPROVAL_TIMED_OUT).count() == 1


def test_a_paused_webhook_tells_its_owner(world, settings):
    from eoms.webhooks.models import SubscriptionState
    from eoms.webhooks.services import create_subscription, send_due_deliveries

    settings.WEBHOOKS_ALLOW_PRIVATE = True
    settings.WEBHOOKS_MAX_ATTEMPTS = 1
    settings.WEBHOOKS_PAUSE_AFTER = 1
    deliver()  # the world's own events, before the webhook exists
    # Nothing listens on this port: every delivery fails at once.
    target = f"http://127.0.0.1:{free_port()}/hooks/eoms?token=receiver-secret"
    subscription, _secret = create_subscription(
        actor=world.admin, target_url=target, event_types=["orders.order_created"], description="ERP"
    )
    world.order()
    deliver()
    send_due_deliveries()
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.PAUSED
    deliver()
    deliver()
    assert told(world.admin, NotificationKind.WEBHOOK_PAUSED) == [
        (
            "Webhook paused: 127.0.0.1",
            "Your webhook to 127.0.0.1 was paused: its deliveries kept failing (1 in a row). "
            "Fix the receiver, then resume it: the deliveries waiting go out then.",
            f"/webhooks/{subscription.pk}/",
        )
    ]
    assert not Notification.objects.filter(body__contains="receiver-secret").exists()
    assert Notification.objects.filter(kind=NotificationKind.WEBHOOK_PAUSED).count() == 1
