"""SLA timers with a frozen clock: due dates in working hours, one reminder, and each timeout
action (escalate, approve, reject, none) done once, by the system, with the rule that fired."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from eoms.approvals.models import ApprovalAction, ApprovalStep, ApprovalTask
from eoms.approvals.services import decide_task, process_timers
from eoms.orders.models import OrderHistory
from eoms.orders.state import OrderState

from .scenarios import (
    actions,
    approval,
    flow,
    mark,
    open_tasks,
    pending,
    place,
    publish,
    state_of,
    steps,
    submit,
    unit,
    user,
)
from .scenarios import tasks as task_rows

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Friday 7 March 2025, 17:00 in Shanghai; the next working day is Monday 10 March.
FRIDAY_5PM = datetime(2025, 3, 7, 17, 0, tzinfo=SHANGHAI)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=SHANGHAI)


def timers(now):
    with time_machine.travel(now, tick=False):
        return process_timers(now=now)


def submitted(world, node, **kw):
    publish(world, flow(node, **kw))
    with time_machine.travel(FRIDAY_5PM, tick=False):
        return submit(world)


def test_due_dates_are_counted_in_working_hours(world):
    """8 working hours from Friday 17:00: one hour on Friday (to 18:00), three on Monday morning
    (09:00-12:00), four after lunch (13:00-17:00): due Monday 17:00. The reminder after 4 working
    hours falls on Monday 12:00."""
    _order, inst = submitted(world, approval("review", "role", sla_hours=8, remind_after_hours=4))
    step = ApprovalStep.objects.get(instance=inst)
    assert step.started_at == FRIDAY_5PM
    assert step.due_at == at(10, 17)
    assert step.remind_at == at(10, 12)


def test_due_date_skips_an_official_holiday(world):
    """Qingming 2025: Friday 4 April is a holiday; 4 working hours from Thursday 16:00 are two that
    day and two on Monday 7 April."""
    publish(world, flow(approval("review", "role", sla_hours=4)))
    with time_machine.travel(datetime(2025, 4, 3, 16, 0, tzinfo=SHANGHAI), tick=False):
        _order, inst = submit(world)
    assert ApprovalStep.objects.get(instance=inst).due_at == datetime(2025, 4, 7, 11, 0, tzinfo=SHANGHAI)


def test_a_reminder_is_sent_once(world):
    _order, inst = submitted(world, approval("review", "role", sla_hours=8, remind_after_hours=4))
    assert timers(at(10, 11, 59)) == {"reminded": 0, "timed_out": 0}
    m = mark()
    assert timers(at(10, 12)) == {"reminded": 1, "timed_out": 0}
    assert timers(at(10, 12, 1)) == {"reminded": 0, "timed_out": 0}
    assert m.events() == ["approvals.task_reminded"]
    assert m.audit() == ["approvals.task_reminded"]
    assert actions(inst) == [("submit", "pm1", ""), ("remind", None, "review")]
    assert ApprovalAction.objects.get(instance=inst, kind="remind").detail == {"users": [str(world.approver)]}
    reminded = m.payloads("approvals.task_reminded")[0]
    assert (reminded["node_id"], reminded["task_ids"]) == ("review", [str(pending(inst, "approver1").id)])


def test_escalation_asks_the_late_approvers_manager(world):
    boss = user("boss")
    team = unit("APPR", manager=boss)
    place(world.approver, team)
    order, inst = submitted(world, approval("review", "role", sla_hours=8, on_timeout="escalate"))
    assert timers(at(10, 16, 59)) == {"reminded": 0, "timed_out": 0}
    m = mark()
    assert timers(at(10, 17)) == {"reminded": 0, "timed_out": 1}
    assert timers(at(10, 18)) == {"reminded": 0, "timed_out": 0}
    assert open_tasks(inst) == [("review", "approver1", "pending"), ("review", "boss", "pending")]
    escalated = ApprovalTask.objects.get(instance=inst, assignee=boss)
    assert escalated.reason == f"escalated: {world.approver} did not decide in time"
    assert actions(inst)[-1] == ("escalate", None, "review")
    assert ApprovalAction.objects.get(instance=inst, kind="escalate").detail == {
        "rule": "SLA of 8 working hours at “REVIEW” exceeded; on timeout: escalate to the manager",
        "to": ["boss"],
    }
    assert m.events() == ["approvals.step_timed_out", "approvals.task_created"]
    assert m.audit() == ["approvals.step_timed_out", "approvals.task_created"]
    # The manager's approval decides the node (mode any).
    decide_task(actor=boss, task_id=escalated.id, decision="approve")
    assert state_of(order) == OrderState.APPROVED


def test_escalation_in_all_mode_replaces_only_the_late_approvers_who_have_a_manager(world):
    boss = user("boss")
    alice = user("alice")
    place(world.approver, unit("APPR", manager=boss))
    order, inst = submitted(
        world,
        approval("review", "users", users=[world.approver, alice], mode="all", sla_hours=8, on_timeout="escalate"),
    )
    timers(at(10, 17))
    assert task_rows(inst) == [
        ("review", "approver1", "cancelled", "approver", None),
        ("review", "alice", "pending", "approver", None),
        ("review", "boss", "pending", "approver", None),
    ]
    decide_task(actor=boss, task_id=pending(inst, "boss").id, decision="approve")
    assert state_of(order) == OrderState.PENDING_APPROVAL  # alice (no manager) still decides
    decide_task(actor=alice, task_id=pending(inst, "alice").id, decision="approve")
    assert state_of(order) == OrderState.APPROVED


def test_escalation_in_a_sequence_hands_the_turn_to_the_manager(world):
    boss = user("boss")
    alice = user("alice")
    place(world.approver, unit("APPR", manager=boss))
    order, inst = submitted(
        world,
        approval("review", "users", users=[world.approver, alice], mode="sequence", sla_hours=8, on_timeout="escalate"),
    )
    timers(at(10, 17))
    assert open_tasks(inst) == [("review", "alice", "waiting"), ("review", "boss", "pending")]
    decide_task(actor=boss, task_id=pending(inst, "boss").id, decision="approve")
    assert open_tasks(inst) == [("review", "alice", "pending")]
    decide_task(actor=alice, task_id=pending(inst, "alice").id, decision="approve")
    assert state_of(order) == OrderState.APPROVED


def test_auto_approve_on_timeout_is_done_by_the_system_with_the_rule(world):
    order, inst = submitted(world, approval("review", "role", sla_hours=8, on_timeout="approve"))
    m = mark()
    assert timers(at(10, 17)) == {"reminded": 0, "timed_out": 1}
    inst.refresh_from_db()
    assert (inst.state, state_of(order)) == ("approved", OrderState.APPROVED)
    assert steps(inst) == [("review", "approval", "approved", 1)]
    assert task_rows(inst) == [("review", "approver1", "cancelled", "approver", None)]
    assert actions(inst) == [
        ("submit", "pm1", ""),
        ("auto_approve", None, "review"),
        ("complete", None, ""),
    ]
    rule = "SLA of 8 working hours at “REVIEW” exceeded; on timeout: approve automatically"
    assert ApprovalAction.objects.get(instance=inst, kind="auto_approve").detail == {"rule": rule}
    assert m.events() == ["approvals.step_timed_out", "approvals.approval_completed", "orders.order_transitioned"]
    assert m.audit() == ["approvals.step_timed_out", "approvals.approval_completed", "orders.approve"]
    history = OrderHistory.objects.filter(order=order).order_by("-at", "-id").first()
    assert (history.transition, history.actor, history.comment) == ("approve", None, rule)
    assert timers(at(10, 18)) == {"reminded": 0, "timed_out": 0}


def test_auto_approve_moves_on_to_the_next_node(world):
    alice = user("alice")
    publish(
        world,
        flow(approval("review", "role", sla_hours=8, on_timeout="approve"), approval("next", "users", users=[alice])),
    )
    with time_machine.travel(FRIDAY_5PM, tick=False):
        order, inst = submit(world)
    timers(at(10, 17))
    assert open_tasks(inst) == [("next", "alice", "pending")]
    assert state_of(order) == OrderState.PENDING_APPROVAL


def test_auto_reject_on_timeout(world):
    order, inst = submitted(world, approval("review", "role", sla_hours=8, on_timeout="reject"))
    m = mark()
    timers(at(10, 17))
    inst.refresh_from_db()
    assert (inst.state, state_of(order)) == ("rejected", OrderState.REJECTED)
    assert actions(inst) == [("submit", "pm1", ""), ("auto_reject", None, "review"), ("complete", None, "")]
    assert ApprovalAction.objects.get(instance=inst, kind="auto_reject").detail == {
        "rule": "SLA of 8 working hours at “REVIEW” exceeded; on timeout: reject automatically"
    }
    assert m.audit() == ["approvals.step_timed_out", "approvals.approval_completed", "orders.reject"]


def test_auto_reject_with_on_reject_quoting(world):
    order, _inst = submitted(world, approval("review", "role", sla_hours=8, on_timeout="reject"), on_reject="quoting")
    timers(at(10, 17))
    assert state_of(order) == OrderState.QUOTING


def test_a_timeout_without_an_action_reminds_once(world):
    _order, inst = submitted(world, approval("review", "role", sla_hours=8))
    m = mark()
    assert timers(at(10, 17)) == {"reminded": 0, "timed_out": 1}
    assert timers(at(11, 17)) == {"reminded": 0, "timed_out": 0}
    assert actions(inst)[-1] == ("remind", None, "review")
    assert ApprovalAction.objects.get(instance=inst, kind="remind").detail == {
        "rule": "SLA of 8 working hours at “REVIEW” exceeded; on timeout: remind the approvers",
        "users": [str(world.approver)],
    }
    assert m.events() == ["approvals.step_timed_out"]
    assert open_tasks(inst) == [("review", "approver1", "pending")]


def test_a_decided_step_has_no_timers(world):
    order, inst = submitted(world, approval("review", "role", sla_hours=8, remind_after_hours=4, on_timeout="reject"))
    decide_task(actor=world.approver, task_id=pending(inst, "approver1").id, decision="approve")
    assert timers(at(12, 17)) == {"reminded": 0, "timed_out": 0}
    assert state_of(order) == OrderState.APPROVED


@pytest.mark.parametrize("on_timeout", ["approve", "reject"])
def test_a_returned_approval_is_not_timed_out(world, on_timeout):
    order, inst = submitted(world, approval("review", "role", sla_hours=8, on_timeout=on_timeout))
    decide_task(
        actor=world.approver,
        task_id=pending(inst, "approver1").id,
        decision="reject",
        comment="请补充",
        return_to="initiator",
    )
    assert timers(at(12, 17)) == {"reminded": 0, "timed_out": 0}
    assert state_of(order) == OrderState.QUOTING
