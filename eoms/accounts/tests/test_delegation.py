"""Delegation (a deputy for a date range): the checks when it is set (cycles, overlaps, periods) and
what it does to approval tasks (chains A→B→C, "on behalf of", dates, never the initiator)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from eoms.accounts.roles import Role
from eoms.accounts.selectors import list_delegations, resolve_deputy
from eoms.accounts.services import DelegationInvalid, DelegationNotFound, end_delegation, set_delegation
from eoms.approvals.models import ApprovalAction, ApprovalTask
from eoms.approvals.selectors import TaskFilters, list_tasks, task_counts
from eoms.approvals.services import decide_task
from eoms.approvals.tests.scenarios import approval, flow, mark, publish, state_of, submit, tasks, user
from eoms.core.errors import PermissionDenied
from eoms.orders.state import OrderState

TODAY = timezone.localdate


def delegate(who, deputy, *, days=(0, 0), actor=None):
    today = TODAY()
    return set_delegation(
        actor=actor or who,
        user=who,
        deputy=deputy,
        starts_on=today + timedelta(days=days[0]),
        ends_on=today + timedelta(days=days[1]),
        reason="出差",
    )


@pytest.fixture
def abc(world):
    return user("a", Role.APPROVER), user("b", Role.APPROVER), user("c", Role.APPROVER)


def test_a_chain_sends_the_task_to_its_end_on_behalf_of_the_absent_user(world, abc):
    a, b, c = abc
    delegate(a, b)
    delegate(b, c)
    assert resolve_deputy(a, on=TODAY()) == (c, [a, b, c])
    publish(world, flow(approval("review", "users", users=[a])))
    order, inst = submit(world)
    assert tasks(inst) == [("review", "c", "pending", "approver", "a")]
    task = ApprovalTask.objects.get(instance=inst)
    assert task.reason == "named in the flow"
    m = mark()
    decide_task(actor=c, task_id=task.id, decision="approve", comment="代批")
    action = ApprovalAction.objects.get(instance=inst, kind="approve")
    assert (action.actor, action.on_behalf_of) == (c, a)
    assert m.payloads("approvals.task_decided")[0]["task_id"] == str(task.id)
    assert state_of(order) == OrderState.APPROVED
    # The absent user and the deputy both see the task in their "delegated" box.
    for person in (a, c):
        assert [t.pk for t in list_tasks(actor=person, filters=TaskFilters(box="delegated"))] == [task.pk]
        assert task_counts(actor=person)["delegated"] == 1
    assert task_counts(actor=b)["delegated"] == 0


def test_a_cycle_is_refused(world, abc):
    a, b, c = abc
    delegate(a, b)
    delegate(b, c)
    with pytest.raises(DelegationInvalid) as caught:
        delegate(c, a)
    assert (caught.value.status, caught.value.code) == (422, "delegation.invalid")
    assert caught.value.errors == [
        {
            "field": "deputy",
            "message": "a's own deputies lead back to c in this period; delegations may not form a cycle.",
        }
    ]
    # Periods that do not meet do not make a cycle.
    delegate(c, a, days=(1, 3))


def test_an_overlapping_period_is_refused(world, abc):
    a, b, c = abc
    delegate(a, b, days=(0, 9))
    with pytest.raises(DelegationInvalid) as caught:
        delegate(a, c, days=(5, 15))
    assert caught.value.errors == [{"field": "starts_on", "message": "a already has a deputy in this period."}]
    delegate(a, c, days=(10, 15))  # the day after is free


@pytest.mark.parametrize(
    ("deputy", "days", "errors"),
    [
        ("self", (0, 0), [{"field": "deputy", "message": "A user cannot be their own deputy."}]),
        ("inactive", (0, 0), [{"field": "deputy", "message": "Choose an active user as deputy."}]),
        ("b", (3, 2), [{"field": "ends_on", "message": "The period must end on or after its first day."}]),
        ("b", (0, 366), [{"field": "ends_on", "message": "A delegation lasts at most one year."}]),
    ],
)
def test_bad_delegations(world, abc, deputy, days, errors):
    a, b, _c = abc
    gone = user("gone")
    gone.is_active = False
    gone.save()
    who = {"self": a, "inactive": gone, "b": b}[deputy]
    with pytest.raises(DelegationInvalid) as caught:
        delegate(a, who, days=days)
    assert caught.value.errors == errors


def test_only_admins_set_someone_elses_delegation(world, abc):
    a, b, _c = abc
    with pytest.raises(PermissionDenied):
        delegate(a, b, actor=world.pm)
    m = mark()
    delegation = delegate(a, b, actor=world.admin)
    assert m.events() == ["accounts.delegation_set"]
    assert m.audit() == ["accounts.delegation_set"]
    assert list(list_delegations(actor=a)) == [delegation]
    assert list(list_delegations(actor=world.pm)) == []
    assert list(list_delegations(actor=world.admin)) == [delegation]


def test_outside_its_dates_a_delegation_does_nothing(world, abc):
    a, b, _c = abc
    delegate(a, b, days=(1, 5))
    delegate(b, a, days=(-3, -1))  # a past delegation the other way
    publish(world, flow(approval("review", "users", users=[a])))
    _order, inst = submit(world)
    assert tasks(inst) == [("review", "a", "pending", "approver", None)]


def test_ending_a_delegation_stops_it_for_new_tasks(world, abc):
    a, b, _c = abc
    delegation = delegate(a, b)
    publish(world, flow(approval("review", "users", users=[a])))
    _order, first = submit(world)
    with pytest.raises(DelegationNotFound):
        end_delegation(actor=b, delegation_id=delegation.id)
    end_delegation(actor=a, delegation_id=delegation.id)
    _order, second = submit(world)
    assert tasks(first) == [("review", "b", "pending", "approver", "a")]  # already sent: stays with b
    assert tasks(second) == [("review", "a", "pending", "approver", None)]
    assert list(list_delegations(actor=a)) == []


def test_a_deputy_who_is_the_initiator_is_not_used_for_their_own_order(world, abc):
    a, _b, c = abc
    delegate(world.approver, world.pm)
    publish(world, flow(approval("review", "role")))
    _order, inst = submit(world)  # pm1 submits
    # approver1's deputy is pm1, the initiator: approver1 keeps the task (and a, b, c their own).
    assert ("review", "approver1", "pending", "approver", None) in tasks(inst)
    assert all(t[1] != "pm1" for t in tasks(inst))
    # Further down a chain, the chain stops before the initiator.
    delegate(a, world.pm, days=(1, 1))
    delegate(world.pm, c, days=(1, 1))
    assert resolve_deputy(a, on=TODAY() + timedelta(days=1))[0] == c
    from eoms.approvals.engine import deputy_of

    assert deputy_of(a, initiator=world.pm, on=TODAY() + timedelta(days=1)) == a
    assert deputy_of(a, initiator=None, on=TODAY() + timedelta(days=1)) == c


def test_a_deputy_is_used_for_other_peoples_orders(world, abc):
    _a, b, _c = abc
    delegate(world.approver, b)
    publish(world, flow(approval("review", "users", users=[world.approver])))
    _order, inst = submit(world, actor=world.admin)
    assert tasks(inst) == [("review", "b", "pending", "approver", "approver1")]


def test_resolve_deputy_stops_at_a_cycle_in_old_data(world, abc):
    from eoms.accounts.models import Delegation

    a, b, _c = abc
    today = TODAY()
    Delegation.objects.create(user=a, deputy=b, starts_on=today, ends_on=today, created_by=world.admin)
    Delegation.objects.create(user=b, deputy=a, starts_on=today, ends_on=today, created_by=world.admin)
    assert resolve_deputy(a, on=today) == (b, [a, b])
