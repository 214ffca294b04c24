"""The order lifecycle, exhaustively: every (state, transition) pair for every role of the test world.

The expected rules are written out here (LIFECYCLE) independently of eoms.orders.state, and the first
test checks that the table in state.py says the same, so a change to either shows up as a failure.
One order per state is walked once per module; every case runs inside its own savepoint on top.
"""

from decimal import Decimal

import pytest
from django.db import transaction
from django.test.utils import override_settings
from django.utils import translation

from eoms.core.errors import ValidationFailed
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.orders import services
from eoms.orders.attachments import inspect_upload
from eoms.orders.errors import GuardFailed, InvalidTransition, OrderNotFound, OrderPermissionDenied, StaleOrder
from eoms.orders.models import Attachment, Order, OrderHistory
from eoms.orders.state import BY_NAME, TRANSITIONS, OrderState, transitions_from
from eoms.testing.world import PATHS, PDF, build_world

S = OrderState
ROLES = ["admin", "project_manager", "approver", "field_engineer", "finance", "auditor", "outsider"]
PM_ADMIN = frozenset({"project_manager", "admin"})
BEFORE_SIGNING = (S.INITIATED, S.QUOTING, S.PENDING_APPROVAL, S.APPROVED, S.REJECTED)
AFTER_SIGNING = (S.SIGNED, S.IN_EXECUTION, S.ON_HOLD, S.PENDING_ACCEPTANCE, S.ACCEPTED, S.SETTLING)

# name: ({source state: roles allowed from it}, target, comment required, guard codes)
LIFECYCLE = {
    "start_quotation": ({S.INITIATED: PM_ADMIN}, S.QUOTING, False, ()),
    "submit": ({S.QUOTING: PM_ADMIN}, S.PENDING_APPROVAL, False, ()),
    # Taken only by the approval engine when an approval ends (tested in eoms.approvals).
    "approve": ({S.PENDING_APPROVAL: set()}, S.APPROVED, False, ()),
    "reject": ({S.PENDING_APPROVAL: set()}, S.REJECTED, False, ()),
    "return_for_revision": ({S.PENDING_APPROVAL: set()}, S.QUOTING, False, ()),
    "withdraw": ({S.PENDING_APPROVAL: set()}, S.QUOTING, False, ()),
    "revise": ({S.REJECTED: PM_ADMIN}, S.QUOTING, False, ()),
    "sign": ({S.APPROVED: PM_ADMIN}, S.SIGNED, False, ("order.signed_contract_required",)),
    "start_execution": ({S.SIGNED: {"project_manager", "field_engineer"}}, S.IN_EXECUTION, False, ()),
    "hold": ({S.IN_EXECUTION: PM_ADMIN}, S.ON_HOLD, True, ()),
    "resume": ({S.ON_HOLD: PM_ADMIN}, S.IN_EXECUTION, False, ()),
    "request_acceptance": (
        {S.IN_EXECUTION: {"project_manager", "field_engineer"}},
        S.PENDING_ACCEPTANCE,
        False,
        (),
    ),
    "accept": ({S.PENDING_ACCEPTANCE: {"project_manager"}}, S.ACCEPTED, False, ("order.acceptance_report_required",)),
    "reject_acceptance": ({S.PENDING_ACCEPTANCE: {"project_manager"}}, S.IN_EXECUTION, True, ()),
    "start_settlement": (
        {S.ACCEPTED: {"finance", "project_manager"}},
        S.SETTLING,
        False,
        ("order.children_not_accepted",),
    ),
    "settle": ({S.SETTLING: {"finance"}}, S.SETTLED, False, ()),
    # Cancelling after signing is the administrator's alone.
    "cancel": (
        {**dict.fromkeys(BEFORE_SIGNING, PM_ADMIN), **dict.fromkeys(AFTER_SIGNING, {"admin"})},
        S.CANCELLED,
        True,
        (),
    ),
}

SYSTEM = {"approve", "reject", "return_for_revision", "withdraw"}
# Submitting also starts the approval: its start and the first task are events of their own.
EXTRA_EVENTS = {"submit": 2}
CASES = [(state, t.name) for state in S.values for t in TRANSITIONS]


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture(scope="module")
def prepared(django_db_setup, django_db_blocker, tmp_path_factory):
    """A world and one order in every state, with the files the guards of `sign` and `accept` ask
    for, built once; each test's savepoint rolls back what it did, this transaction the rest."""
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=tmp_path_factory.mktemp("media")),
        transaction.atomic(),
    ):
        world = build_world()
        orders = {state: world.order(state) for state in S.values}
        for state, kind in ((S.APPROVED, "signed_contract"), (S.PENDING_ACCEPTANCE, "acceptance_report")):
            services.attach_file(
                actor=world.pm, order_id=orders[state].id, kind=kind, upload=inspect_upload(f"{kind}.pdf", PDF)
            )
        yield world, {state: order.id for state, order in orders.items()}
        transaction.set_rollback(True)


@pytest.fixture
def world(prepared, db):
    """The module's world; what a test adds rolls back with the test."""
    return prepared[0]


def snapshot(order_id) -> dict:
    order = Order.objects.get(pk=order_id)
    return {
        "state": order.state,
        "version": order.version,
        "stage_owner": order.stage_owner_id,
        "history": OrderHistory.objects.filter(order_id=order_id).count(),
        "attachments": Attachment.objects.filter(order_id=order_id).count(),
        "audit": AuditEntry.objects.count(),
        "outbox": OutboxMessage.objects.count(),
    }


def test_roles_cover_the_world(world):
    assert list(world.by_role) == ROLES


def test_transition_table_is_the_documented_lifecycle():
    assert [t.name for t in TRANSITIONS] == list(LIFECYCLE)
    for t in TRANSITIONS:
        allowed, target, comment_required, guards = LIFECYCLE[t.name]
        assert {s: set(t.allowed_roles(s)) for s in t.sources} == {s: set(r) for s, r in allowed.items()}, t.name
        assert t.target == target
        assert t.comment_required is comment_required
        assert tuple(g.code for g in t.guards) == guards
    # Every state but the two terminal ones can be left; nothing leaves SETTLED or CANCELLED.
    assert {s for s in S.values if transitions_from(s)} == set(S.values) - {S.SETTLED, S.CANCELLED}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("state", "name"), CASES)
def test_transition(prepared, db, state, name, role):
    world, order_ids = prepared
    actor = world.by_role[role]
    order_id = order_ids[state]
    order = Order.objects.get(pk=order_id)
    allowed, target, _, _ = LIFECYCLE[name]
    before = snapshot(order_id)
    comment = "因施工条件变化"

    if role == "outsider":
        # Another project's manager does not learn that the order exists.
        with pytest.raises(OrderNotFound) as caught:
            services.transition_order(actor=actor, order_id=order_id, name=name, comment=comment)
        assert (caught.value.status, caught.value.code) == (404, "order.not_found")
    elif state not in allowed:
        with pytest.raises(InvalidTransition) as caught:
            services.transition_order(actor=actor, order_id=order_id, name=name, comment=comment)
        possible = ", ".join(t.name for t in transitions_from(state)) or "none"
        sources = ", ".join(allowed)
        assert (caught.value.status, caught.value.code) == (409, "order.invalid_transition")
        assert caught.value.detail == (
            f"Order {order.number} is {state}; '{name}' is possible only from {sources}. Possible now: {possible}."
        )
        assert caught.value.extra == {"current_state": state}
    elif role not in allowed[state]:
        with pytest.raises(OrderPermissionDenied) as caught:
            services.transition_order(actor=actor, order_id=order_id, name=name, comment=comment)
        assert (caught.value.status, caught.value.code) == (403, "order.permission_denied")
        if name in SYSTEM:
            assert caught.value.detail == (
                "Orders are approved or rejected through their approval flow: decide the task in My tasks."
            )
        else:
            assert caught.value.detail == f"You may not '{name}' order {order.number}."
    else:
        moved = services.transition_order(actor=actor, order_id=order_id, name=name, comment=comment)
        assert (moved.state, moved.version) == (target, before["version"] + 1)
        assert moved.updated_by_id == actor.pk
        after = snapshot(order_id)
        extra = EXTRA_EVENTS.get(name, 0)
        if name == "cancel" and state == S.PENDING_APPROVAL:
            extra = 1  # the running approval ends (withdrawn): its own event
        elif name == "cancel" and state == S.QUOTING:
            extra = 0  # this order was never submitted: no approval to end
        assert (after["history"], after["audit"], after["outbox"]) == (
            before["history"] + 1,
            before["audit"] + 1 + extra,
            before["outbox"] + 1 + extra,
        )
        row = OrderHistory.objects.filter(order_id=order_id).latest("id")
        assert (row.transition, row.from_state, row.to_state, row.actor_id, row.comment) == (
            name,
            state,
            target,
            actor.pk,
            comment,
        )
        entry = AuditEntry.objects.filter(action__startswith="orders.").order_by("-id").first()
        assert (entry.action, entry.object_id, entry.actor_id) == (f"orders.{name}", str(order_id), actor.pk)
        assert entry.changes["state"] == [state, target]
        message = OutboxMessage.objects.filter(event_type__startswith="orders.").order_by("-id").first()
        assert message.event_type == "orders.order_transitioned"
        assert (message.payload["transition"], message.payload["from_state"], message.payload["to_state"]) == (
            name,
            state,
            target,
        )
        if name == "cancel":
            assert moved.cancel_reason == comment
        if name == "hold":
            assert moved.held_from == state
        return
    assert snapshot(order_id) == before


def test_unknown_transition_is_invalid(world):
    order = world.order(S.QUOTING)
    with pytest.raises(InvalidTransition) as caught:
        services.transition_order(actor=world.pm, order_id=order.id, name="teleport")
    assert caught.value.detail == "Unknown action 'teleport'. Possible now: submit, cancel."
    assert caught.value.code == "order.invalid_transition"


COMMENTED = [(state, name) for name, (allowed, _, required, _) in LIFECYCLE.items() if required for state in allowed]


@pytest.mark.parametrize("comment", ["", "   \n\t "])
@pytest.mark.parametrize(("state", "name"), COMMENTED)
def test_comment_required(prepared, db, state, name, comment):
    world, order_ids = prepared
    allowed, _, _, _ = LIFECYCLE[name]
    actor = world.by_role[sorted(allowed[state])[0]]
    before = snapshot(order_ids[state])
    with pytest.raises(ValidationFailed) as caught:
        services.transition_order(actor=actor, order_id=order_ids[state], name=name, comment=comment)
    assert (caught.value.status, caught.value.errors) == (
        422,
        [{"field": "comment", "message": "This field is required."}],
    )
    assert snapshot(order_ids[state]) == before


def test_stale_version_is_refused(world):
    order = world.order(S.QUOTING)
    before = snapshot(order.id)
    with pytest.raises(StaleOrder) as caught:
        services.transition_order(actor=world.pm, order_id=order.id, name="submit", expected_version=order.version - 1)
    assert (caught.value.status, caught.value.code) == (409, "order.stale")
    assert caught.value.extra == {"current_state": S.QUOTING, "current_version": order.version}
    assert snapshot(order.id) == before
    moved = services.transition_order(actor=world.pm, order_id=order.id, name="submit", expected_version=order.version)
    assert moved.state == S.PENDING_APPROVAL


def test_cancel_after_signing_only_by_admin(world):
    for state in AFTER_SIGNING:
        order = world.order(state)
        with pytest.raises(OrderPermissionDenied):
            services.transition_order(actor=world.pm, order_id=order.id, name="cancel", comment="业主取消")
        cancelled = services.transition_order(actor=world.admin, order_id=order.id, name="cancel", comment="业主取消")
        assert (cancelled.state, cancelled.cancel_reason, cancelled.stage_owner_id) == (S.CANCELLED, "业主取消", None)
    assert set(BY_NAME["cancel"].allowed_roles(S.SIGNED)) == {"admin"}


# Guards -----------------------------------------------------------------------------------------


def test_sign_needs_a_signed_contract(world):
    order = world.order(S.APPROVED)
    services.attach_file(actor=world.pm, order_id=order.id, kind="drawing", upload=inspect_upload("d.pdf", PDF))
    before = snapshot(order.id)
    with pytest.raises(GuardFailed) as caught:
        services.transition_order(actor=world.pm, order_id=order.id, name="sign")
    assert (caught.value.status, caught.value.code) == (409, "order.signed_contract_required")
    assert caught.value.detail == "Attach the signed contract (kind: signed contract) to sign the order."
    assert snapshot(order.id) == before
    contract = services.attach_file(
        actor=world.pm, order_id=order.id, kind="signed_contract", upload=inspect_upload("c.pdf", PDF)
    )
    signed = services.transition_order(
        actor=world.pm, order_id=order.id, name="sign", attachment_ids=[contract.id], expected_version=order.version
    )
    assert signed.state == S.SIGNED
    contract.refresh_from_db()
    assert contract.history.transition == "sign"


def test_accept_needs_an_acceptance_report(world):
    order = world.order(S.PENDING_ACCEPTANCE)
    before = snapshot(order.id)
    with pytest.raises(GuardFailed) as caught:
        services.transition_order(actor=world.pm, order_id=order.id, name="accept")
    assert (caught.value.status, caught.value.code) == (409, "order.acceptance_report_required")
    assert caught.value.detail == "Attach the acceptance report (kind: acceptance report) to accept the order."
    assert snapshot(order.id) == before
    accepted = services.transition_order(
        actor=world.pm,
        order_id=order.id,
        name="accept",
        attachments=[("acceptance_report", inspect_upload("report.pdf", PDF))],
    )
    assert accepted.state == S.ACCEPTED
    assert accepted.attachments.get(kind="acceptance_report").history.transition == "accept"


@pytest.mark.parametrize("child_end", [S.ACCEPTED, S.CANCELLED, S.SETTLED])
def test_start_settlement_waits_for_children(world, child_end):
    parent = world.order(S.ACCEPTED)
    child = world.order(S.INITIATED, parent=parent, amount="300000.00")
    ready = world.order(S.INITIATED, parent=parent, amount="200000.00")
    world.walk(ready, "cancel")
    before = snapshot(parent.id)
    with pytest.raises(GuardFailed) as caught:
        services.transition_order(actor=world.finance, order_id=parent.id, name="start_settlement")
    assert (caught.value.status, caught.value.code) == (409, "order.children_not_accepted")
    assert caught.value.detail == f"Child orders must be accepted first: {child.number}"
    assert snapshot(parent.id) == before

    for name in PATHS[child_end]:
        world.walk(child, name)
    child.refresh_from_db()
    assert child.state == child_end
    settling = services.transition_order(actor=world.finance, order_id=parent.id, name="start_settlement")
    assert settling.state == S.SETTLING
    assert settling.contract_amount == Decimal("1000000.00")
