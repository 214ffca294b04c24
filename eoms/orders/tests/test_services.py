"""Order services: each write leaves exactly its rows (history, audit entry, outbox message), and a
write that fails leaves nothing at all, not even a stored file."""

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.utils import translation
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from eoms.core.audit import verify_chain
from eoms.core.errors import ValidationFailed
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.orders import services
from eoms.orders.attachments import inspect_upload
from eoms.orders.errors import (
    GuardFailed,
    OrderNotFound,
    OrderPermissionDenied,
    OrderValidationFailed,
    StaleOrder,
)
from eoms.orders.models import Attachment, Order, OrderHistory
from eoms.orders.state import OrderState
from eoms.testing.world import PATHS, PDF, PNG

S = OrderState
MARCH = datetime(2026, 3, 16, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def counts() -> dict:
    return {
        "orders": Order.objects.count(),
        "history": OrderHistory.objects.count(),
        "attachments": Attachment.objects.count(),
        "audit": AuditEntry.objects.count(),
        "outbox": OutboxMessage.objects.count(),
    }


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def last_audit() -> AuditEntry:
    return AuditEntry.objects.order_by("-id").first()


def last_message() -> OutboxMessage:
    return OutboxMessage.objects.order_by("-id").first()


def create(world, amount="1000000.00", **kwargs) -> Order:
    return services.create_order(
        actor=kwargs.pop("actor", world.pm),
        project=kwargs.pop("project", world.project),
        title=kwargs.pop("title", "滨江大道排水管网改造"),
        contract_amount=Decimal(amount),
        **kwargs,
    )


# Create ------------------------------------------------------------------------------------------


def test_create_order(world):
    before = counts()
    with time_machine.travel(MARCH, tick=False):
        order = create(world, "1250000.50", description="一期工程")
    assert counts() == {
        **before,
        "orders": 1,
        "history": 1,
        "audit": before["audit"] + 1,
        "outbox": before["outbox"] + 1,
    }
    order.refresh_from_db()
    assert order.number == "ORD-2026-000001"
    assert (order.state, order.version, order.level, order.parent_id) == (S.INITIATED, 1, 1, None)
    assert (order.contract_amount, order.tax_rate) == (Decimal("1250000.50"), Decimal("0.09"))
    assert (order.net_amount, order.tax_amount) == (Decimal("1146789.45"), Decimal("103211.05"))
    assert (order.customer_id, order.region) == (world.project.customer_id, world.project.region)
    assert (order.stage_owner_id, order.created_by_id, order.updated_by_id) == (world.pm.pk,) * 3
    assert order.stage_entered_at == MARCH
    assert order.stage_deadline == MARCH + timedelta(days=5)

    history = order.history.get()
    assert (history.transition, history.from_state, history.to_state, history.actor_id) == (
        "create",
        "",
        S.INITIATED,
        world.pm.pk,
    )
    entry = last_audit()
    assert (entry.action, entry.object_type, entry.object_id, entry.object_repr, entry.actor_id) == (
        "orders.order_created",
        "orders.order",
        str(order.id),
        "ORD-2026-000001",
        world.pm.pk,
    )
    assert entry.changes == {
        "title": "滨江大道排水管网改造",
        "contract_amount": "1250000.50",
        "estimated_cost": None,
        "tax_rate": "0.09",
        "kind": "construction",
        "project": world.project.code,
        "parent": None,
    }
    message = last_message()
    assert (message.event_type, message.aggregate_type, message.aggregate_id, message.actor_id) == (
        "orders.order_created",
        "orders.order",
        str(order.id),
        str(world.pm.pk),
    )
    assert message.payload == {
        "order_id": str(order.id),
        "number": "ORD-2026-000001",
        "project_id": str(world.project.id),
        "parent_id": None,
        "amount": "1250000.50",
    }
    assert verify_chain() is None


def test_order_numbers_are_sequential_per_local_year(world):
    with time_machine.travel(MARCH, tick=False):
        numbers = [create(world, "1000.00").number for _ in range(3)]
    assert numbers == ["ORD-2026-000001", "ORD-2026-000002", "ORD-2026-000003"]
    # 16:30 UTC on 31 December is already New Year's Day in Shanghai.
    with time_machine.travel(datetime(2026, 12, 31, 16, 30, tzinfo=UTC), tick=False):
        assert create(world, "1000.00").number == "ORD-2027-000001"
    with time_machine.travel(datetime(2026, 12, 31, 15, 30, tzinfo=UTC), tick=False):
        assert create(world, "1000.00").number == "ORD-2026-000004"


def test_refused_creation_does_not_use_a_number(world):
    with time_machine.travel(MARCH, tick=False):
        assert create(world).number == "ORD-2026-000001"
        with pytest.raises(ValidationFailed):
            create(world, "0.00")
        with pytest.raises(OrderPermissionDenied):
            create(world, actor=world.approver)
        assert create(world).number == "ORD-2026-000002"


@pytest.mark.parametrize(
    ("field", "kwargs", "message"),
    [
        ("title", {"title": "   "}, "This field is required."),
        ("title", {"title": "长" * 201}, "At most 200 characters."),
        ("title", {"title": 12}, "Must be text."),
        ("description", {"description": "x" * 20001}, "At most 20000 characters."),
        ("tax_rate", {"tax_rate": Decimal("0.10")}, "Tax rate must be one of 0.09, 0.06, 0.13, 0.03, 0.00."),
        (
            "kind",
            {"kind": "demolition"},
            "Type must be one of construction, installation, design, procurement, consulting, maintenance.",
        ),
    ],
)
def test_create_refuses_bad_fields(world, field, kwargs, message):
    before = counts()
    with pytest.raises(OrderValidationFailed) as caught:
        create(world, **kwargs)
    assert (caught.value.status, caught.value.code) == (422, "order.validation_failed")
    assert caught.value.errors == [{"field": field, "message": message}]
    assert counts() == before


def test_create_refuses_another_projects_customer(world):
    other_customer = world.other_project.customer
    with pytest.raises(OrderValidationFailed) as caught:
        create(world, customer=other_customer)
    assert caught.value.errors == [{"field": "customer", "message": "The customer must be the project's customer."}]


@pytest.mark.parametrize("role", ["approver", "field_engineer", "finance", "auditor", "outsider"])
def test_create_needs_a_manager_of_the_project(world, role):
    before = counts()
    with pytest.raises(OrderPermissionDenied) as caught:
        create(world, actor=world.by_role[role])
    assert caught.value.detail == f"You may not create orders on project {world.project.code}."
    assert counts() == before


def test_admin_creates_on_any_project(world):
    order = create(world, actor=world.admin, project=world.other_project)
    assert (order.project_id, order.stage_owner_id) == (world.other_project.id, world.admin.pk)


# Subcontract tree --------------------------------------------------------------------------------


def test_child_must_fit_in_what_is_left_of_the_parent(world):
    parent = create(world, "1000000.00")
    first = create(world, "600000.00", parent_id=parent.id)
    assert (first.level, first.parent_id) == (2, parent.id)
    before = counts()
    with pytest.raises(OrderValidationFailed) as caught:
        create(world, "400000.01", parent_id=parent.id)
    message = f"Order {parent.number} has 400,000.00 left for subcontracts; 400,000.01 exceeds it."
    assert caught.value.errors == [{"field": "contract_amount", "message": message}]
    assert counts() == before
    second = create(world, "400000.00", parent_id=parent.id)
    assert second.number == f"ORD-{parent.number[4:8]}-{int(parent.number[-6:]) + 2:06d}"
    # A cancelled child gives its amount back.
    world.walk(first, "cancel")
    assert create(world, "600000.00", parent_id=parent.id).level == 2


def test_fourth_level_is_refused(world):
    main = create(world, "1000000.00")
    sub = create(world, "500000.00", parent_id=main.id)
    subsub = create(world, "200000.00", parent_id=sub.id)
    assert (main.level, sub.level, subsub.level) == (1, 2, 3)
    before = counts()
    with pytest.raises(OrderValidationFailed) as caught:
        create(world, "100000.00", parent_id=subsub.id)
    assert caught.value.errors == [
        {"field": "parent_id", "message": "Orders nest at most three levels (main, sub, sub-sub)."}
    ]
    assert counts() == before


def test_child_stays_on_its_parents_project_and_parent_must_be_open(world):
    parent = create(world)
    with pytest.raises(OrderValidationFailed) as caught:
        create(world, actor=world.admin, project=world.other_project, parent_id=parent.id)
    assert caught.value.errors == [
        {"field": "parent_id", "message": "A subcontract order belongs to its parent's project."}
    ]
    with pytest.raises(OrderValidationFailed) as caught:
        create(world, actor=world.outsider, project=world.other_project, parent_id=parent.id)
    assert caught.value.errors == [{"field": "parent_id", "message": "No such parent order."}]
    world.walk(parent, "cancel")
    with pytest.raises(OrderValidationFailed) as caught:
        create(world, parent_id=parent.id)
    assert caught.value.errors == [
        {"field": "parent_id", "message": f"Order {parent.number} is CANCELLED; it takes no new subcontracts."}
    ]


# Update ------------------------------------------------------------------------------------------


def test_update_order(world):
    order = create(world)
    before = counts()
    updated = services.update_order(
        actor=world.pm,
        order_id=order.id,
        changes={"title": "滨江大道排水管网改造（二期）", "contract_amount": "1100000"},
        expected_version=1,
    )
    assert counts() == {**before, "audit": before["audit"] + 1, "outbox": before["outbox"] + 1}
    assert (updated.title, updated.contract_amount, updated.version) == (
        "滨江大道排水管网改造（二期）",
        Decimal("1100000.00"),
        2,
    )
    entry = last_audit()
    assert (entry.action, entry.object_id) == ("orders.order_updated", str(order.id))
    assert entry.changes == {
        "title": ["滨江大道排水管网改造", "滨江大道排水管网改造（二期）"],
        "contract_amount": ["1000000.00", "1100000.00"],
    }
    message = last_message()
    assert message.event_type == "orders.order_updated"
    assert message.payload == {
        "order_id": str(order.id),
        "number": order.number,
        "fields": ["contract_amount", "title"],
    }


def test_update_without_a_difference_writes_nothing(world):
    order = create(world)
    before = counts()
    same = services.update_order(actor=world.pm, order_id=order.id, changes={"title": order.title})
    assert (same.version, counts()) == (1, before)


@pytest.mark.parametrize(
    ("state", "changes", "refused"),
    [
        (S.APPROVED, {"contract_amount": "1.00"}, ["contract_amount"]),
        (S.PENDING_APPROVAL, {"title": "新", "kind": "design"}, ["kind", "title"]),
        (S.INITIATED, {"state": S.SETTLED}, ["state"]),
        (S.INITIATED, {"version": 9, "number": "ORD-1"}, ["number", "version"]),
    ],
)
def test_update_refuses_fields_the_state_freezes(world, state, changes, refused):
    order = world.order(state)
    before = counts()
    with pytest.raises(OrderValidationFailed) as caught:
        services.update_order(actor=world.pm, order_id=order.id, changes=changes)
    assert caught.value.status == 422
    assert caught.value.errors == [{"field": f, "message": f"Not editable in state {state}."} for f in refused]
    assert counts() == before
    order.refresh_from_db()
    assert order.version == len(PATHS[state]) + 1


@pytest.mark.parametrize(("state", "role"), [(S.SETTLED, "project_manager"), (S.INITIATED, "auditor")])
def test_update_refused_when_nothing_is_editable(world, state, role):
    order = world.order(state)
    with pytest.raises(OrderPermissionDenied):
        services.update_order(actor=world.by_role[role], order_id=order.id, changes={"title": "x"})


def test_update_of_an_invisible_order_is_not_found(world):
    order = create(world)
    with pytest.raises(OrderNotFound):
        services.update_order(actor=world.outsider, order_id=order.id, changes={"title": "x"})


def test_update_with_a_stale_version_is_refused(world):
    order = create(world)
    services.update_order(actor=world.pm, order_id=order.id, changes={"title": "一"}, expected_version=1)
    before = counts()
    with pytest.raises(StaleOrder) as caught:
        services.update_order(actor=world.pm, order_id=order.id, changes={"title": "二"}, expected_version=1)
    assert (caught.value.status, caught.value.code) == (409, "order.stale")
    assert caught.value.detail == f"Order {order.number} is at version 2, not 1; reload it."
    assert counts() == before
    order.refresh_from_db()
    assert (order.title, order.version) == ("一", 2)


def test_amounts_in_the_tree_stay_consistent_on_update(world):
    parent = create(world, "1000000.00")
    child = create(world, "600000.00", parent_id=parent.id)
    create(world, "300000.00", parent_id=parent.id)
    with pytest.raises(OrderValidationFailed) as caught:
        services.update_order(actor=world.pm, order_id=parent.id, changes={"contract_amount": "899999.99"})
    assert caught.value.errors == [
        {"field": "contract_amount", "message": "Its subcontracts already take 900,000.00; the amount cannot be less."}
    ]
    with pytest.raises(OrderValidationFailed) as caught:
        services.update_order(actor=world.pm, order_id=child.id, changes={"contract_amount": "700000.01"})
    assert caught.value.errors == [
        {
            "field": "contract_amount",
            "message": f"Order {parent.number} has 700,000.00 left for subcontracts; 700,000.01 exceeds it.",
        }
    ]
    grown = services.update_order(actor=world.pm, order_id=child.id, changes={"contract_amount": "700000.00"})
    assert grown.contract_amount == Decimal("700000.00")


# Transition and attachments ----------------------------------------------------------------------


def test_transition_order(world):
    order = create(world)
    before = counts()
    moved = services.transition_order(actor=world.pm, order_id=order.id, name="start_quotation", expected_version=1)
    assert counts() == {
        **before,
        "history": before["history"] + 1,
        "audit": before["audit"] + 1,
        "outbox": before["outbox"] + 1,
    }
    assert (moved.state, moved.version, moved.stage_owner_id) == (S.QUOTING, 2, world.pm.pk)
    entry = last_audit()
    assert (entry.action, entry.object_repr) == ("orders.start_quotation", order.number)
    assert entry.changes == {
        "state": ["INITIATED", "QUOTING"],
        "comment": "",
        "stage_owner": [str(world.pm.pk), str(world.pm.pk)],
        "attachments": [],
    }
    message = last_message()
    assert message.event_type == "orders.order_transitioned"
    assert message.payload == {
        "order_id": str(order.id),
        "number": order.number,
        "transition": "start_quotation",
        "from_state": "INITIATED",
        "to_state": "QUOTING",
        "stage_owner_id": str(world.pm.pk),
        "project_id": str(world.project.id),
    }
    submitted = services.transition_order(actor=world.pm, order_id=order.id, name="submit")
    assert submitted.stage_owner_id == world.approver.pk


def test_attach_file(world):
    order = create(world)
    before = counts()
    upload = inspect_upload("现场照片.png", PNG)
    attachment = services.attach_file(actor=world.engineer, order_id=order.id, kind="photo", upload=upload)
    assert counts() == {
        **before,
        "attachments": 1,
        "audit": before["audit"] + 1,
        "outbox": before["outbox"] + 1,
    }
    attachment.refresh_from_db()
    sha = hashlib.sha256(PNG).hexdigest()
    assert (attachment.kind, attachment.original_name, attachment.content_type, attachment.size, attachment.sha256) == (
        "photo",
        "现场照片.png",
        "image/png",
        len(PNG),
        sha,
    )
    assert attachment.history_id is None
    assert stored_files() == [Path(settings.MEDIA_ROOT) / f"orders/{order.id}/{attachment.id}"]
    assert stored_files()[0].read_bytes() == PNG
    entry = last_audit()
    assert (entry.action, entry.object_repr) == ("orders.attachment_added", f"{order.number}: 现场照片.png")
    assert entry.changes == {
        "kind": "photo",
        "name": "现场照片.png",
        "size": len(PNG),
        "sha256": sha,
        "content_type": "image/png",
    }
    message = last_message()
    assert message.event_type == "orders.attachment_added"
    assert message.payload == {
        "order_id": str(order.id),
        "number": order.number,
        "attachment_id": str(attachment.id),
        "kind": "photo",
        "sha256": sha,
    }


@pytest.mark.parametrize("role", ["approver", "finance", "auditor"])
def test_attach_refused_to_who_cannot_act_on_the_order(world, role):
    order = create(world)
    before = counts()
    with pytest.raises(OrderPermissionDenied):
        services.attach_file(
            actor=world.by_role[role], order_id=order.id, kind="photo", upload=inspect_upload("p", PNG)
        )
    assert (counts(), stored_files()) == (before, [])


def test_attach_refuses_an_unknown_kind(world):
    order = create(world)
    before = counts()
    with pytest.raises(OrderValidationFailed) as caught:
        services.attach_file(actor=world.pm, order_id=order.id, kind="selfie", upload=inspect_upload("p", PNG))
    assert caught.value.errors[0]["field"] == "kind"
    assert (counts(), stored_files()) == (before, [])


def test_guard_failure_after_upload_leaves_no_rows_and_no_file(world):
    order = world.order(S.APPROVED)
    before = counts()
    with pytest.raises(GuardFailed) as caught:
        services.transition_order(
            actor=world.pm,
            order_id=order.id,
            name="sign",
            attachments=[("drawing", inspect_upload("drawing.pdf", PDF))],
        )
    assert caught.value.code == "order.signed_contract_required"
    assert (counts(), stored_files()) == (before, [])
    order.refresh_from_db()
    assert order.state == S.APPROVED


def test_bad_attachment_ids_after_upload_leave_no_rows_and_no_file(world):
    order = world.order(S.APPROVED)
    other = create(world)
    elsewhere = services.attach_file(actor=world.pm, order_id=other.id, kind="other", upload=inspect_upload("a", PDF))
    files = stored_files()
    before = counts()
    with pytest.raises(OrderValidationFailed) as caught:
        services.transition_order(
            actor=world.pm,
            order_id=order.id,
            name="sign",
            attachments=[("signed_contract", inspect_upload("contract.pdf", PDF))],
            attachment_ids=[elsewhere.id],
        )
    assert caught.value.errors == [
        {"field": "attachment_ids", "message": "Name files of this order not yet shown with another action."}
    ]
    assert (counts(), stored_files()) == (before, files)


def test_transition_with_upload_links_the_file_to_its_history_row(world):
    order = world.order(S.APPROVED)
    signed = services.transition_order(
        actor=world.pm,
        order_id=order.id,
        name="sign",
        comment="双方盖章",
        attachments=[("signed_contract", inspect_upload("contract.pdf", PDF))],
    )
    attachment = signed.attachments.get()
    history = signed.history.get(transition="sign")
    assert (attachment.history_id, history.comment) == (history.id, "双方盖章")
    assert last_audit().changes["attachments"] == [hashlib.sha256(PDF).hexdigest()]
    # Audit entries: the attachment, then the transition.
    assert list(AuditEntry.objects.order_by("-id").values_list("action", flat=True)[:2]) == [
        "orders.sign",
        "orders.attachment_added",
    ]


# Amounts, as a property ---------------------------------------------------------------------------

LIMIT = services.MAX_AMOUNT


def _acceptable(amount: Decimal) -> bool:
    return amount.is_finite() and Decimal(0) < amount <= LIMIT and amount == amount.quantize(Decimal("0.01"))


amounts = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=Decimal("-1"), max_value=LIMIT + 1, places=2),
    st.decimals(min_value=Decimal("0"), max_value=Decimal("1000"), places=3),
    st.sampled_from(
        [
            LIMIT,
            LIMIT + Decimal("0.01"),
            Decimal("0.01"),
            Decimal("0.001"),
            Decimal("-0"),
            Decimal("1E+1"),
            Decimal("1.000"),
            Decimal("1E-30"),
            Decimal("sNaN"),
            Decimal("12345678901.5"),
        ]
    ),
)


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=amounts)
def test_amount_is_accepted_only_with_two_places_up_to_the_limit(world, amount):
    try:
        order = create(world, amount)
    except ValidationFailed as refused:
        assert not _acceptable(amount), amount
        assert [e["field"] for e in refused.errors] == ["contract_amount"]
    else:
        assert _acceptable(amount), amount
        order.refresh_from_db()
        assert order.contract_amount == amount
        assert order.contract_amount.as_tuple().exponent == -2


@pytest.mark.parametrize("rate", ["abc", "NaN", None, "Infinity", "0.10"])
def test_create_order_refuses_a_tax_rate_that_is_not_one_of_the_rates(world, rate):
    from eoms.core.models import AuditEntry
    from eoms.orders import services
    from eoms.orders.errors import OrderValidationFailed
    from eoms.orders.models import Order

    audits = AuditEntry.objects.count()
    with pytest.raises(OrderValidationFailed) as refused:
        services.create_order(actor=world.pm, project=world.project, title="t", contract_amount="100.00", tax_rate=rate)
    assert [e["field"] for e in refused.value.errors] == ["tax_rate"]
    assert (Order.objects.count(), AuditEntry.objects.count()) == (0, audits)


def test_cancelling_an_order_in_approval_ends_its_approval(world):
    from eoms.approvals.models import ApprovalInstance, ApprovalTask

    order = world.order(OrderState.PENDING_APPROVAL)
    services.transition_order(actor=world.pm, order_id=order.id, name="cancel", comment="业主取消")
    instance = ApprovalInstance.objects.get(subject_id=str(order.id))
    assert instance.state == "withdrawn"
    assert list(ApprovalTask.objects.filter(instance=instance).values_list("state", flat=True)) == ["cancelled"]
