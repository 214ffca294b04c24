"""Decisions that race: approvers of one 会签 node deciding at the same instant each count exactly
once, and a double-clicked approve is applied once (the second click gets 409).

Every decision locks the instance row first, then re-reads its task (services module docstring).
The sequential double click runs everywhere; the true races need a server database (threads with
their own connections released together by a barrier, as in eoms/orders/tests/test_concurrency.py)
and are skipped on SQLite.
"""

import pytest
from django.db import connection

from eoms.accounts.roles import Role
from eoms.accounts.selectors import get_active_user
from eoms.approvals.errors import TaskNotPending
from eoms.approvals.models import ApprovalAction, ApprovalStep, ApprovalTask
from eoms.approvals.services import decide_task
from eoms.core.audit import verify_chain
from eoms.core.models import OutboxMessage
from eoms.orders.state import OrderState
from eoms.testing.concurrency import race

from .scenarios import approval, flow, mark, pending, publish, state_of, submit, user

SERVER = connection.vendor in ("postgresql", "mysql")


def test_a_double_click_is_applied_once(world):
    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    task = pending(inst, "approver1")
    m = mark()
    decide_task(actor=world.approver, task_id=task.id, decision="approve")
    with pytest.raises(TaskNotPending) as caught:
        decide_task(actor=world.approver, task_id=task.id, decision="approve")
    assert (caught.value.status, caught.value.code) == (409, "approval.task_not_pending")
    assert caught.value.extra == {"task_state": "approved"}
    assert ApprovalAction.objects.filter(instance=inst, kind="approve").count() == 1
    assert m.events() == ["approvals.task_decided", "approvals.approval_completed", "orders.order_transitioned"]
    assert state_of(order) == OrderState.APPROVED


def test_a_stale_task_read_before_a_decision_cannot_be_decided_again(world):
    """The compare-and-set on the task: a decision made with the task as read before someone else
    moved it finds it changed."""
    from eoms.approvals.services import _move_task

    publish(world, flow(approval("review", "role")))
    _order, inst = submit(world)
    stale = pending(inst, "approver1")
    decide_task(actor=world.approver, task_id=stale.id, decision="approve")
    with pytest.raises(TaskNotPending) as caught:
        _move_task(stale, state="rejected")
    assert caught.value.detail == "This task was decided by someone else a moment ago; reload it."
    stale.refresh_from_db()
    assert stale.state == "approved"


COUNTERSIGNERS = 8


def _countersign(world):
    people = [world.approver] + [user(f"signer{i}", Role.APPROVER) for i in range(COUNTERSIGNERS - 1)]
    publish(world, flow(approval("board", "users", users=people, mode="all")))
    order, inst = submit(world)
    return people, order, inst


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not SERVER, reason="needs a server database (PostgreSQL or MariaDB)")
def test_countersigners_deciding_at_the_same_instant_each_count_once(world):
    people, order, inst = _countersign(world)
    ids = {p.pk: pending(inst, p.username).id for p in people}
    before = OutboxMessage.objects.order_by("-id").values_list("id", flat=True).first()

    def sign(i):
        actor = get_active_user(people[i].pk)
        return decide_task(actor=actor, task_id=ids[people[i].pk], decision="approve", comment=f"签 {i}").state

    results = race(COUNTERSIGNERS, sign)
    assert results == ["approved"] * COUNTERSIGNERS
    assert (
        sorted(ApprovalTask.objects.filter(instance=inst).values_list("state", flat=True))
        == ["approved"] * COUNTERSIGNERS
    )
    assert list(ApprovalStep.objects.filter(instance=inst).values_list("state", flat=True)) == ["approved"]
    assert ApprovalAction.objects.filter(instance=inst, kind="approve").count() == COUNTERSIGNERS
    assert ApprovalAction.objects.filter(instance=inst, kind="complete").count() == 1
    types = list(OutboxMessage.objects.filter(id__gt=before).values_list("event_type", flat=True))
    assert sorted(types) == sorted(
        ["approvals.task_decided"] * COUNTERSIGNERS + ["approvals.approval_completed", "orders.order_transitioned"]
    )
    assert state_of(order) == OrderState.APPROVED
    assert verify_chain() is None


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not SERVER, reason="needs a server database (PostgreSQL or MariaDB)")
def test_a_quorum_race_stops_at_the_quorum(world):
    people = [world.approver] + [user(f"member{i}", Role.APPROVER) for i in range(4)]
    publish(world, flow(approval("board", "users", users=people, mode="quorum", quorum={"count": 2})))
    order, inst = submit(world)
    ids = [pending(inst, p.username).id for p in people]

    def vote(i):
        return decide_task(actor=get_active_user(people[i].pk), task_id=ids[i], decision="approve").state

    results = race(len(people), vote)
    won = [r for r in results if r == "approved"]
    lost = [r for r in results if r != "approved"]
    assert len(won) == 2, results
    assert all(isinstance(r, TaskNotPending) for r in lost), lost
    assert sorted(ApprovalTask.objects.filter(instance=inst).values_list("state", flat=True)) == [
        "approved",
        "approved",
        "cancelled",
        "cancelled",
        "cancelled",
    ]
    assert ApprovalAction.objects.filter(instance=inst, kind="complete").count() == 1
    assert state_of(order) == OrderState.APPROVED
    assert verify_chain() is None


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not SERVER, reason="needs a server database (PostgreSQL or MariaDB)")
def test_a_double_click_at_the_same_instant_is_applied_once(world):
    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    task_id = pending(inst, "approver1").id

    def click(_i):
        return decide_task(actor=get_active_user(world.approver.pk), task_id=task_id, decision="approve").state

    results = race(10, click)
    assert results.count("approved") == 1, results
    lost = [r for r in results if r != "approved"]
    assert len(lost) == 9
    assert all(isinstance(r, TaskNotPending) and r.status == 409 for r in lost), lost
    assert ApprovalAction.objects.filter(instance=inst, kind="approve").count() == 1
    assert state_of(order) == OrderState.APPROVED
    assert verify_chain() is None
