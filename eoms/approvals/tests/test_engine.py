"""Scenario tests of the approval engine through its services: every approver source, every mode,
every branch kind, return and resubmission, transfer, add signer, withdraw, nudge, comment, bulk
decisions, the self-approval guard, approver edits and what the outcome does to the order.

Each scenario asserts the exact tasks, steps, timeline, audit entries and outbox events."""

from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from eoms.accounts.roles import Role
from eoms.approvals.errors import (
    ApprovalConflict,
    ApprovalInputInvalid,
    ApprovalPermissionDenied,
    TaskNotPending,
)
from eoms.approvals.models import ActionAttachment, ApprovalAction, ApprovalStep, ApprovalTask
from eoms.approvals.services import (
    add_signer,
    bulk_decide,
    comment_approval,
    decide_task,
    nudge_approval,
    transfer_task,
    withdraw_approval,
)
from eoms.orders import services as orders
from eoms.orders.attachments import inspect_upload
from eoms.orders.errors import OrderPermissionDenied
from eoms.orders.state import OrderState
from eoms.testing.world import PDF

from .scenarios import (
    actions,
    approval,
    branch,
    exclusive,
    flow,
    mark,
    open_tasks,
    org,
    parallel,
    pending,
    publish,
    rule,
    state_of,
    steps,
    submit,
    tasks,
    user,
    when,
)

SUBMITTED = ["orders.order_transitioned", "approvals.approval_started"]
SUBMITTED_AUDIT = ["orders.submit", "approvals.approval_started"]
APPROVED_LAST = ["approvals.task_decided", "approvals.approval_completed", "orders.order_transitioned"]
APPROVED_LAST_AUDIT = ["approvals.task_decided", "approvals.approval_completed", "orders.approve"]


def approve(instance, username, comment=""):
    task = pending(instance, username)
    return decide_task(actor=task.assignee, task_id=task.id, decision="approve", comment=comment)


def reject(instance, username, comment="不同意", **kw):
    task = pending(instance, username)
    return decide_task(actor=task.assignee, task_id=task.id, decision="reject", comment=comment, **kw)


# --- approver sources ------------------------------------------------------------------------------


def test_named_users_in_all_mode_each_approve_then_the_order_is_approved(world):
    alice, bob = user("alice"), user("bob")
    publish(world, flow(approval("legal", "users", users=[alice, bob], mode="all")))
    order = world.order(OrderState.QUOTING)
    m = mark()
    order, inst = submit(world, order)
    assert state_of(order) == OrderState.PENDING_APPROVAL
    assert tasks(inst) == [
        ("legal", "alice", "pending", "approver", None),
        ("legal", "bob", "pending", "approver", None),
    ]
    assert steps(inst) == [("legal", "approval", "active", 1)]
    assert actions(inst) == [("submit", "pm1", "")]
    assert m.events() == [*SUBMITTED, "approvals.task_created", "approvals.task_created"]
    assert m.audit() == [*SUBMITTED_AUDIT, "approvals.task_created", "approvals.task_created"]
    assert ApprovalTask.objects.get(instance=inst, assignee=alice).reason == "named in the flow"

    m = mark()
    approve(inst, "alice")
    assert open_tasks(inst) == [("legal", "bob", "pending")]
    assert state_of(order) == OrderState.PENDING_APPROVAL
    assert m.events() == ["approvals.task_decided"]
    assert m.audit() == ["approvals.task_decided"]

    m = mark()
    approve(inst, "bob")
    inst.refresh_from_db()
    assert (inst.state, state_of(order)) == ("approved", OrderState.APPROVED)
    assert steps(inst) == [("legal", "approval", "approved", 1)]
    assert actions(inst) == [
        ("submit", "pm1", ""),
        ("approve", "alice", "legal"),
        ("approve", "bob", "legal"),
        ("complete", "bob", ""),
    ]
    assert m.events() == APPROVED_LAST
    assert m.audit() == APPROVED_LAST_AUDIT
    assert ApprovalAction.objects.get(instance=inst, kind="complete").detail == {"outcome": "approved"}


def test_role_source_asks_every_active_holder_of_the_role(world):
    user("approver2", Role.APPROVER)
    gone = user("approver3", Role.APPROVER)
    gone.is_active = False
    gone.save()
    user("finance2", Role.FINANCE)
    publish(world, flow(approval("review", "role", role=Role.APPROVER, mode="all")))
    _order, inst = submit(world)
    assert tasks(inst) == [
        ("review", "approver1", "pending", "approver", None),
        ("review", "approver2", "pending", "approver", None),
    ]
    assert ApprovalTask.objects.get(instance=inst, assignee__username="approver2").reason == "has the role Approver"


def test_project_role_source_asks_the_projects_pm(world):
    publish(world, flow(approval("pm_check", "project_role", project_role="pm", if_empty="admins")))
    order, inst = submit(world, actor=world.admin)  # the PM is not the initiator here
    assert tasks(inst) == [("pm_check", "pm1", "pending", "approver", None)]
    assert ApprovalTask.objects.get(instance=inst).reason == f"project manager of {inst.subject_repr}"
    approve(inst, "pm1")
    assert state_of(order) == OrderState.APPROVED


def test_project_role_engineer_source(world):
    publish(world, flow(approval("site", "project_role", project_role="engineer", if_empty="admins")))
    _order, inst = submit(world)
    assert tasks(inst) == [("site", "engineer1", "pending", "approver", None)]


def test_manager_source_one_level_is_the_initiators_direct_manager(world):
    org(world)
    publish(world, flow(approval("boss", "manager", levels=1, if_empty="admins")))
    _order, inst = submit(world)
    assert tasks(inst) == [("boss", "lead", "pending", "approver", None)]
    assert ApprovalTask.objects.get(instance=inst).reason == f"manager level 1 of {world.pm}"


def test_manager_chain_asks_each_manager_in_turn(world):
    org(world)
    publish(world, flow(approval("chain", "manager", levels=3, chain=True, if_empty="admins")))
    order, inst = submit(world)
    assert tasks(inst) == [
        ("chain", "lead", "pending", "approver", None),
        ("chain", "head", "waiting", "approver", None),
        ("chain", "gm", "waiting", "approver", None),
    ]
    step = ApprovalStep.objects.get(instance=inst)
    assert (step.mode, step.needed) == ("sequence", 3)
    # The second manager cannot decide before the first.
    waiting = ApprovalTask.objects.get(instance=inst, assignee__username="head")
    with pytest.raises(TaskNotPending):
        decide_task(actor=waiting.assignee, task_id=waiting.id, decision="approve")
    m = mark()
    approve(inst, "lead")
    assert open_tasks(inst) == [("chain", "head", "pending"), ("chain", "gm", "waiting")]
    assert m.events() == ["approvals.task_decided", "approvals.task_created"]
    approve(inst, "head")
    assert open_tasks(inst) == [("chain", "gm", "pending")]
    assert state_of(order) == OrderState.PENDING_APPROVAL
    approve(inst, "gm")
    assert state_of(order) == OrderState.APPROVED
    assert [a[:2] for a in actions(inst)] == [
        ("submit", "pm1"),
        ("approve", "lead"),
        ("approve", "head"),
        ("approve", "gm"),
        ("complete", "gm"),
    ]


def test_manager_nth_level_only_asks_that_manager(world):
    org(world)
    publish(world, flow(approval("third", "manager", levels=3, if_empty="admins")))
    _order, inst = submit(world)
    assert tasks(inst) == [("third", "gm", "pending", "approver", None)]
    assert ApprovalTask.objects.get(instance=inst).reason == f"manager level 3 of {world.pm}"


def test_picked_source_asks_the_user_picked_at_submit(world):
    alice = user("alice")
    publish(world, flow(approval("chosen", "picked")))
    order = world.order(OrderState.QUOTING)
    with pytest.raises(ApprovalInputInvalid) as missing:
        submit(world, order)
    assert missing.value.status == 422
    assert missing.value.errors == [{"field": "picked.chosen", "message": "Pick the approver for “CHOSEN”."}]
    with pytest.raises(ApprovalInputInvalid) as yourself:
        submit(world, order, picked={"chosen": str(world.pm.pk)})
    assert yourself.value.errors == [
        {"field": "picked.chosen", "message": "You cannot pick yourself to approve your own request."}
    ]
    with pytest.raises(ApprovalInputInvalid) as malformed:
        submit(world, order, picked={"chosen": "not-a-user"})
    assert malformed.value.errors[0]["field"] == "picked.chosen"
    assert state_of(order) == OrderState.QUOTING  # nothing was submitted
    order, inst = submit(world, order, picked={"chosen": str(alice.pk)})
    assert tasks(inst) == [("chosen", "alice", "pending", "approver", None)]
    assert inst.picked == {"chosen": str(alice.pk)}
    assert ApprovalTask.objects.get(instance=inst).reason == f"picked by {world.pm} at submission"


def test_field_source_asks_the_user_in_the_field(world):
    publish(world, flow(approval("owner", "field", field="project_manager", if_empty="admins")))
    _order, inst = submit(world, actor=world.admin)
    assert tasks(inst) == [("owner", "pm1", "pending", "approver", None)]
    assert ApprovalTask.objects.get(instance=inst).reason == "held in the field project_manager"


def test_empty_source_with_if_empty_admins_goes_to_the_administrators(world):
    user("admin2", Role.ADMIN)
    # pm1 has no org unit: no manager.
    publish(world, flow(approval("boss", "manager", levels=1, if_empty="admins")))
    _order, inst = submit(world)
    assert tasks(inst) == [
        ("boss", "admin1", "pending", "approver", None),
        ("boss", "admin2", "pending", "approver", None),
    ]
    assert ApprovalTask.objects.get(instance=inst, assignee__username="admin1").reason == (
        "no approver was found; administrators decide"
    )


def test_empty_source_with_if_empty_approve_passes_the_node_by_the_system(world):
    publish(
        world,
        flow(
            approval("boss", "manager", levels=1, if_empty="approve"),
            approval("review", "role"),
        ),
    )
    order = world.order(OrderState.QUOTING)
    m = mark()
    _order, inst = submit(world, order)
    assert steps(inst) == [("boss", "approval", "skipped", 1), ("review", "approval", "active", 1)]
    assert m.events() == [*SUBMITTED, "approvals.task_decided", "approvals.task_created"]
    assert m.payloads("approvals.task_decided")[0]["by_system"] is True
    assert actions(inst) == [("submit", "pm1", ""), ("auto_approve", None, "boss")]
    assert ApprovalAction.objects.get(instance=inst, kind="auto_approve").detail == {
        "rule": "if_empty=approve",
        "reason": "No approver was found; the flow approves this node.",
    }
    assert tasks(inst) == [("review", "approver1", "pending", "approver", None)]


def test_a_flow_passed_entirely_by_its_rules_is_approved_by_the_system(world):
    publish(world, flow(approval("boss", "manager", levels=1, if_empty="approve")))
    order = world.order(OrderState.QUOTING)
    m = mark()
    order, inst = submit(world, order)
    inst.refresh_from_db()
    assert (inst.state, state_of(order)) == ("approved", OrderState.APPROVED)
    assert actions(inst) == [("submit", "pm1", ""), ("auto_approve", None, "boss"), ("complete", None, "")]
    history = order.history.order_by("-at", "-id").first()
    assert (history.transition, history.actor) == ("approve", None)  # not the submitter
    assert m.events() == [
        *SUBMITTED,
        "approvals.task_decided",
        "approvals.approval_completed",
        "orders.order_transitioned",
    ]
    from eoms.core.models import AuditEntry

    last = list(AuditEntry.objects.filter(id__gt=m.audit_id).order_by("id").values_list("action", "actor_id"))
    assert last == [
        ("orders.submit", world.pm.pk),
        ("approvals.approval_started", world.pm.pk),
        ("approvals.task_decided", None),
        ("approvals.approval_completed", None),
        ("orders.approve", None),
    ]


def test_an_approval_node_left_without_approvers_never_passes_silently(world):
    """A named user deactivated after publishing leaves the node empty; with no fallback chosen
    the administrators decide (an automatic approval must be asked for)."""
    alice = user("alice")
    publish(world, flow(approval("legal", "users", users=[alice])))
    alice.is_active = False
    alice.save()
    _order, inst = submit(world)
    assert tasks(inst) == [("legal", "admin1", "pending", "approver", None)]
    assert steps(inst) == [("legal", "approval", "active", 1)]


# --- modes -------------------------------------------------------------------------------------------


@pytest.fixture
def three(world):
    return [world.approver, user("approver2", Role.APPROVER), user("approver3", Role.APPROVER)]


def test_any_mode_first_approval_completes_and_cancels_the_others(world, three):
    publish(world, flow(approval("review", "role", mode="any")))
    order, inst = submit(world)
    assert [t[1] for t in open_tasks(inst)] == ["approver1", "approver2", "approver3"]
    m = mark()
    approve(inst, "approver2")
    assert tasks(inst) == [
        ("review", "approver1", "cancelled", "approver", None),
        ("review", "approver2", "approved", "approver", None),
        ("review", "approver3", "cancelled", "approver", None),
    ]
    assert state_of(order) == OrderState.APPROVED
    assert m.events() == APPROVED_LAST
    # A cancelled task cannot be decided any more.
    late = ApprovalTask.objects.get(instance=inst, assignee__username="approver1")
    with pytest.raises(TaskNotPending) as caught:
        decide_task(actor=late.assignee, task_id=late.id, decision="approve")
    assert caught.value.code == "approval.task_not_pending"


def test_any_mode_first_rejection_rejects(world, three):
    publish(world, flow(approval("review", "role", mode="any")))
    order, inst = submit(world)
    m = mark()
    reject(inst, "approver3", comment="价格过高")
    inst.refresh_from_db()
    assert inst.state == "rejected"
    assert state_of(order) == OrderState.REJECTED
    assert [t[2] for t in tasks(inst)] == ["cancelled", "cancelled", "rejected"]
    assert steps(inst) == [("review", "approval", "rejected", 1)]
    assert actions(inst)[-2:] == [("reject", "approver3", "review"), ("complete", "approver3", "")]
    assert m.events() == ["approvals.task_decided", "approvals.approval_completed", "orders.order_transitioned"]
    assert m.audit() == ["approvals.task_decided", "approvals.approval_completed", "orders.reject"]
    assert order.history.order_by("-at").first().comment == "价格过高"


def test_all_mode_one_rejection_rejects_after_approvals(world, three):
    publish(world, flow(approval("review", "role", mode="all")))
    order, inst = submit(world)
    approve(inst, "approver1")
    reject(inst, "approver2")
    assert [t[2] for t in tasks(inst)] == ["approved", "rejected", "cancelled"]
    assert state_of(order) == OrderState.REJECTED


def test_sequence_mode_next_becomes_pending_only_after_the_previous_approves(world):
    a, b, c = user("alice"), user("bob"), user("carol")
    publish(world, flow(approval("seq", "users", users=[c, a, b], mode="sequence")))
    order, inst = submit(world)
    assert open_tasks(inst) == [("seq", "carol", "pending"), ("seq", "alice", "waiting"), ("seq", "bob", "waiting")]
    bob_task = ApprovalTask.objects.get(instance=inst, assignee=b)
    with pytest.raises(TaskNotPending):
        decide_task(actor=b, task_id=bob_task.id, decision="approve")
    approve(inst, "carol")
    assert open_tasks(inst) == [("seq", "alice", "pending"), ("seq", "bob", "waiting")]
    approve(inst, "alice")
    assert open_tasks(inst) == [("seq", "bob", "pending")]
    assert state_of(order) == OrderState.PENDING_APPROVAL
    approve(inst, "bob")
    assert state_of(order) == OrderState.APPROVED


def test_quorum_count_two_of_three(world, three):
    publish(world, flow(approval("board", "role", mode="quorum", quorum={"count": 2})))
    order, inst = submit(world)
    assert ApprovalStep.objects.get(instance=inst).needed == 2
    approve(inst, "approver3")
    assert state_of(order) == OrderState.PENDING_APPROVAL
    approve(inst, "approver1")
    assert [t[2] for t in tasks(inst)] == ["approved", "cancelled", "approved"]
    assert state_of(order) == OrderState.APPROVED


def test_quorum_percent_sixty_of_five_needs_three(world, three):
    user("approver4", Role.APPROVER)
    user("approver5", Role.APPROVER)
    publish(world, flow(approval("board", "role", mode="quorum", quorum={"percent": 60})))
    order, inst = submit(world)
    assert ApprovalStep.objects.get(instance=inst).needed == 3
    approve(inst, "approver1")
    reject(inst, "approver2")
    approve(inst, "approver3")
    assert state_of(order) == OrderState.PENDING_APPROVAL
    approve(inst, "approver4")
    assert [t[2] for t in tasks(inst)] == ["approved", "rejected", "approved", "approved", "cancelled"]
    assert state_of(order) == OrderState.APPROVED


def test_quorum_rejects_once_it_can_no_longer_be_reached(world, three):
    publish(world, flow(approval("board", "role", mode="quorum", quorum={"count": 2})))
    order, inst = submit(world)
    reject(inst, "approver1")
    # Two approvals are still possible.
    assert state_of(order) == OrderState.PENDING_APPROVAL
    assert open_tasks(inst) == [("board", "approver2", "pending"), ("board", "approver3", "pending")]
    reject(inst, "approver2")
    inst.refresh_from_db()
    assert (inst.state, state_of(order)) == ("rejected", OrderState.REJECTED)
    assert [t[2] for t in tasks(inst)] == ["rejected", "rejected", "cancelled"]


def test_nobody_at_all_can_decide_rejects_by_the_system(world):
    """The initiator is the only administrator and the node's source is empty: the request is
    rejected by the system with the reason, not left waiting forever."""
    publish(world, flow(approval("boss", "manager", levels=1, if_empty="admins")))
    order, inst = submit(world, actor=world.admin)
    inst.refresh_from_db()
    assert (inst.state, state_of(order)) == ("rejected", OrderState.REJECTED)
    assert steps(inst) == [("boss", "approval", "rejected", 1)]
    assert actions(inst) == [("submit", "admin1", ""), ("auto_reject", None, "boss"), ("complete", None, "")]
    history = order.history.order_by("-at", "-id").first()
    assert (history.transition, history.actor) == ("reject", None)
    assert ApprovalAction.objects.get(instance=inst, kind="auto_reject").detail["rule"] == "no_approver"


# --- branches ----------------------------------------------------------------------------------------


def amount_flow(people):
    """The domain's typical thresholds: the department head always; from 500,000 the GM too;
    from 5,000,000 the GM and the chairman."""
    return flow(
        approval("dept", "users", users=[people.head]),
        exclusive(
            "by_amount",
            branch(
                "huge",
                [approval("gm_huge", "users", users=[people.gm]), approval("chair", "users", users=[people.chairman])],
                when([rule("amount", "gte", "5000000")]),
            ),
            branch("large", [approval("gm", "users", users=[people.gm])], when([rule("amount", "gte", "500000")])),
            branch("small", [], default=True),
        ),
    )


@pytest.mark.parametrize(
    ("amount", "route", "reason"),
    [
        ("499999.99", ["dept"], "otherwise → SMALL"),
        ("500000.00", ["dept", "gm"], "contract amount ≥ 500,000 → LARGE"),
        ("4999999.99", ["dept", "gm"], "contract amount ≥ 500,000 → LARGE"),
        ("5000000.00", ["dept", "gm_huge", "chair"], "contract amount ≥ 5,000,000 → HUGE"),
    ],
)
def test_exclusive_branch_by_amount_thresholds(world, amount, route, reason):
    people = org(world)
    publish(world, amount_flow(people))
    order, inst = submit(world, amount=amount)
    decided = []
    while state_of(order) == OrderState.PENDING_APPROVAL:
        task = ApprovalTask.objects.get(instance=inst, state="pending")
        decided.append(task.step.node_id)
        decide_task(actor=task.assignee, task_id=task.id, decision="approve")
    assert decided == route
    assert state_of(order) == OrderState.APPROVED
    split = ApprovalStep.objects.get(instance=inst, kind="split")
    assert (split.node_id, split.state, split.reason) == ("by_amount", "passed", reason)
    if len(route) > 1:
        assert ApprovalStep.objects.get(instance=inst, node_id=route[1]).reason == reason


def test_and_or_conditions(world):
    # (amount ≥ 1,000,000 AND type = design) OR (customer grade = A)
    condition = when(
        [rule("amount", "gte", "1000000"), rule("kind", "eq", "design")], [rule("customer_grade", "eq", "A")]
    )
    people = user("alice")
    doc = flow(
        exclusive(
            "route",
            branch("to_special", [approval("special", "users", users=[people])], condition),
            branch("to_normal", [approval("normal", "role")], default=True),
        )
    )
    publish(world, doc)

    def route(amount, kind, grade):
        customer = world.project.customer
        customer.grade = grade
        customer.save(update_fields=["grade"])
        order = orders.create_order(
            actor=world.pm, project=world.project, title="条件测试", contract_amount=Decimal(amount), kind=kind
        )
        orders.transition_order(actor=world.pm, order_id=order.id, name="start_quotation")
        _order, inst = submit(world, order)
        return [t[0] for t in open_tasks(inst)]

    assert route("1000000", "design", "B") == ["special"]  # both rules of the first group
    assert route("999999.99", "design", "B") == ["normal"]  # one rule of the group fails
    assert route("1000000", "construction", "B") == ["normal"]
    assert route("1", "construction", "A") == ["special"]  # the second group alone


@pytest.mark.parametrize(
    ("condition", "route"),
    [
        (when([rule("customer_grade", "in", ["A", "B"])]), "special"),  # the world's customers are grade B
        (when([rule("customer_grade", "eq", "A")]), "normal"),
        (when([rule("region", "eq", "east")]), "special"),
        (when([rule("region", "ne", "east")]), "normal"),
        (when([rule("kind", "eq", "construction")]), "special"),
        (when([rule("kind", "not_in", ["construction", "design"])]), "normal"),
        (when([rule("title", "contains", "道路")]), "special"),
        (when([rule("project_type", "eq", "municipal_road")]), "special"),
    ],
)
def test_branch_on_grade_region_kind_and_text(world, condition, route):
    alice = user("alice")
    doc = flow(
        exclusive(
            "route",
            branch("to_special", [approval("special", "users", users=[alice])], condition),
            branch("to_normal", [approval("normal", "role")], default=True),
        )
    )
    publish(world, doc)
    _order, inst = submit(world)
    assert [t[0] for t in open_tasks(inst)] == [route]
    split = ApprovalStep.objects.get(instance=inst, kind="split")
    assert split.branch_id == f"to_{route}"


def test_default_branch_is_taken_when_no_condition_holds_wherever_it_is_listed(world):
    alice = user("alice")
    doc = flow(
        exclusive(
            "route",
            branch("to_normal", [approval("normal", "role")], default=True),
            branch("to_special", [approval("special", "users", users=[alice])], when([rule("amount", "gt", "1")])),
        )
    )
    publish(world, doc)
    _order, inst = submit(world, amount="1.00")
    assert open_tasks(inst) == [("normal", "approver1", "pending")]
    _order, inst = submit(world, amount="2.00")
    assert open_tasks(inst) == [("special", "alice", "pending")]


def parallel_flow(world):
    return flow(
        parallel(
            "checks",
            branch("money", [approval("finance", "users", users=[world.finance])]),
            branch("technical", [approval("tech", "users", users=[world.engineer])]),
        ),
        approval("final", "role"),
    )


def test_parallel_branches_join_before_the_next_node(world):
    publish(world, parallel_flow(world))
    order, inst = submit(world)
    assert open_tasks(inst) == [("finance", "finance1", "pending"), ("tech", "engineer1", "pending")]
    approve(inst, "engineer1")
    assert open_tasks(inst) == [("finance", "finance1", "pending")]
    assert ApprovalStep.objects.filter(instance=inst, node_id="final").count() == 0
    approve(inst, "finance1")
    assert open_tasks(inst) == [("final", "approver1", "pending")]
    assert steps(inst) == [
        ("checks", "fork", "passed", 1),
        ("finance", "approval", "approved", 1),
        ("tech", "approval", "approved", 1),
        ("checks::join", "join", "passed", 1),
        ("checks::join", "join", "passed", 1),
        ("final", "approval", "active", 1),
    ]
    approve(inst, "approver1")
    assert state_of(order) == OrderState.APPROVED


def test_a_rejection_in_one_parallel_branch_ends_the_other(world):
    publish(world, parallel_flow(world))
    order, inst = submit(world)
    reject(inst, "finance1")
    assert tasks(inst) == [
        ("finance", "finance1", "rejected", "approver", None),
        ("tech", "engineer1", "cancelled", "approver", None),
    ]
    assert state_of(order) == OrderState.REJECTED


def test_branch_nested_in_a_parallel_branch(world):
    alice = user("alice")
    doc = flow(
        parallel(
            "checks",
            branch(
                "money",
                [
                    exclusive(
                        "money_route",
                        branch(
                            "big", [approval("cfo", "users", users=[alice])], when([rule("amount", "gte", "500000")])
                        ),
                        branch("small", [approval("finance", "users", users=[world.finance])], default=True),
                    )
                ],
            ),
            branch("technical", [approval("tech", "users", users=[world.engineer])]),
        ),
        approval("final", "role"),
    )
    publish(world, doc)
    order, inst = submit(world, amount="600000.00")
    assert open_tasks(inst) == [("cfo", "alice", "pending"), ("tech", "engineer1", "pending")]
    approve(inst, "alice")
    approve(inst, "engineer1")
    assert open_tasks(inst) == [("final", "approver1", "pending")]
    small_order, small = submit(world, amount="100.00")
    assert open_tasks(small) == [("finance", "finance1", "pending"), ("tech", "engineer1", "pending")]
    approve(small, "finance1")
    approve(small, "engineer1")
    approve(small, "approver1")
    assert state_of(small_order) == OrderState.APPROVED


def test_cc_node_copies_and_passes_on(world):
    from .scenarios import cc

    publish(world, flow(cc("inform", users=[world.finance, world.auditor]), approval("review", "role")))
    order = world.order(OrderState.QUOTING)
    m = mark()
    _order, inst = submit(world, order)
    assert tasks(inst) == [
        ("inform", "finance1", "cc", "cc", None),
        ("inform", "auditor1", "cc", "cc", None),
        ("review", "approver1", "pending", "approver", None),
    ]
    assert actions(inst) == [("submit", "pm1", ""), ("cc", "pm1", "inform")]
    assert m.events() == [*SUBMITTED, "approvals.cc_sent", "approvals.task_created"]


# --- return and resubmission -------------------------------------------------------------------------


@pytest.fixture
def three_nodes(world):
    alice, bob = user("alice"), user("bob")
    publish(
        world,
        flow(
            approval("first", "users", users=[world.approver]),
            approval("second", "users", users=[alice]),
            approval("third", "users", users=[bob]),
        ),
    )
    order, inst = submit(world)
    approve(inst, "approver1")
    approve(inst, "alice")
    return order, inst


def test_return_to_an_earlier_node_runs_the_flow_again_from_there(world, three_nodes):
    order, inst = three_nodes
    m = mark()
    reject(inst, "bob", comment="请重新核价", return_to="first")
    inst.refresh_from_db()
    assert (inst.state, inst.round, state_of(order)) == ("running", 2, OrderState.PENDING_APPROVAL)
    assert steps(inst) == [
        ("first", "approval", "approved", 1),
        ("second", "approval", "approved", 1),
        ("third", "approval", "cancelled", 1),
        ("first", "approval", "active", 2),
    ]
    assert open_tasks(inst) == [("first", "approver1", "pending")]
    assert actions(inst)[-1] == ("return", "bob", "third")
    assert ApprovalAction.objects.get(instance=inst, kind="return").detail == {"return_to": "first"}
    assert m.events() == ["approvals.task_decided", "approvals.approval_returned", "approvals.task_created"]
    assert m.audit() == ["approvals.task_decided", "approvals.approval_returned", "approvals.task_created"]
    assert m.payloads("approvals.task_decided")[0]["decision"] == "return"
    # The nodes after it decide again.
    approve(inst, "approver1")
    approve(inst, "alice")
    approve(inst, "bob")
    assert state_of(order) == OrderState.APPROVED


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ("third", "Return only to an earlier node that has approved, or to the initiator."),
        ("nowhere", "“nowhere” is not an approval node of this flow."),
    ],
)
def test_return_to_the_same_or_an_unknown_node_is_refused(world, three_nodes, node, message):
    _order, inst = three_nodes
    with pytest.raises(ApprovalInputInvalid) as caught:
        reject(inst, "bob", return_to=node)
    assert caught.value.status == 422
    assert caught.value.errors == [{"field": "return_to", "message": message}]
    assert open_tasks(inst) == [("third", "bob", "pending")]


def test_return_to_a_later_or_never_approved_node_is_refused(world):
    alice = user("alice")
    publish(
        world,
        flow(
            exclusive(
                "route",
                branch("big", [approval("board", "users", users=[alice])], when([rule("amount", "gte", "9000000")])),
                branch("usual", [], default=True),
            ),
            approval("first", "users", users=[world.approver]),
            approval("second", "users", users=[alice]),
        ),
    )
    _order, inst = submit(world)
    refusal = [
        {"field": "return_to", "message": "Return only to an earlier node that has approved, or to the initiator."}
    ]
    with pytest.raises(ApprovalInputInvalid) as later:
        reject(inst, "approver1", return_to="second")
    assert later.value.errors == refusal
    approve(inst, "approver1")
    with pytest.raises(ApprovalInputInvalid) as skipped:
        reject(inst, "alice", return_to="board")  # earlier in the document, but never on this route
    assert skipped.value.errors == refusal
    with pytest.raises(ApprovalInputInvalid) as approving:
        decide_task(actor=alice, task_id=pending(inst, "alice").id, decision="approve", return_to="first")
    assert approving.value.errors == [{"field": "return_to", "message": "Only a rejection returns."}]


def test_return_to_the_initiator_and_resubmit_continues_from_the_returning_node(world, three_nodes):
    order, inst = three_nodes
    m = mark()
    reject(inst, "bob", comment="补充合同附件", return_to="initiator")
    inst.refresh_from_db()
    assert (inst.state, inst.resume_node, inst.round) == ("returned", "third", 1)
    assert state_of(order) == OrderState.QUOTING
    assert open_tasks(inst) == []
    assert m.events() == ["approvals.task_decided", "approvals.approval_returned", "orders.order_transitioned"]
    assert m.audit() == ["approvals.task_decided", "approvals.approval_returned", "orders.return_for_revision"]

    m = mark()
    order, again = submit(world, order)
    assert again.pk == inst.pk
    again.refresh_from_db()
    assert (again.state, again.round, again.resume_node) == ("running", 2, "")
    assert state_of(order) == OrderState.PENDING_APPROVAL
    assert open_tasks(again) == [("third", "bob", "pending")]  # not first and second again
    assert steps(again)[-1] == ("third", "approval", "active", 2)
    assert [a[:2] for a in actions(again)][-2:] == [("return", "bob"), ("resubmit", "pm1")]
    assert ApprovalAction.objects.get(instance=inst, kind="resubmit").detail == {"resume_at": "third"}
    assert m.events() == [*SUBMITTED, "approvals.task_created"]
    assert m.audit() == ["orders.submit", "approvals.approval_resubmitted", "approvals.task_created"]
    approve(again, "bob")
    assert state_of(order) == OrderState.APPROVED


def test_resubmission_keeps_the_picks_made_at_the_first_submission(world):
    alice = user("alice")
    publish(world, flow(approval("chosen", "picked"), approval("review", "role")))
    order, inst = submit(world, picked={"chosen": str(alice.pk)})
    approve(inst, "alice")
    reject(inst, "approver1", return_to="initiator")
    order, again = submit(world, order)  # no picks given again
    assert again.pk == inst.pk
    assert open_tasks(again) == [("review", "approver1", "pending")]


def test_a_rejection_needs_a_comment_unless_the_node_waives_it(world):
    publish(world, flow(approval("review", "role")))
    _order, inst = submit(world)
    with pytest.raises(ApprovalInputInvalid) as caught:
        reject(inst, "approver1", comment="  ")
    assert caught.value.errors == [{"field": "comment", "message": "Give a reason: a comment is required."}]
    publish(world, flow(approval("review", "role", comment_required_on_reject=False)), key="lenient", priority=5)
    order, lenient = submit(world)
    reject(lenient, "approver1", comment="")
    assert state_of(order) == OrderState.REJECTED


# --- transfer, add signer, withdraw, nudge, comment -------------------------------------------------


def test_transfer_hands_the_task_to_another_user(world):
    alice = user("alice")
    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    task = pending(inst, "approver1")
    m = mark()
    new = transfer_task(actor=world.approver, task_id=task.id, to_user=alice, comment="请代为审核")
    assert tasks(inst) == [
        ("review", "approver1", "transferred", "approver", None),
        ("review", "alice", "pending", "approver", None),
    ]
    assert new.reason == f"transferred by {world.approver}"
    assert actions(inst)[-1] == ("transfer", "approver1", "review")
    assert ApprovalAction.objects.get(instance=inst, kind="transfer").detail == {"to": "alice"}
    assert m.events() == ["approvals.task_transferred", "approvals.task_created"]
    assert m.audit() == ["approvals.task_transferred", "approvals.task_created"]
    with pytest.raises(TaskNotPending):
        decide_task(actor=world.approver, task_id=task.id, decision="approve")
    approve(inst, "alice")
    assert state_of(order) == OrderState.APPROVED


def test_transfer_refusals(world):
    alice = user("alice")
    publish(world, flow(approval("review", "users", users=[world.approver, alice], mode="all")))
    _order, inst = submit(world)
    task = pending(inst, "approver1")
    with pytest.raises(ApprovalPermissionDenied):
        transfer_task(actor=alice, task_id=task.id, to_user=world.finance)
    with pytest.raises(ApprovalInputInvalid) as holder:
        transfer_task(actor=world.approver, task_id=task.id, to_user=alice)
    assert holder.value.errors == [{"field": "to_user", "message": "alice already has a task at this node."}]
    with pytest.raises(ApprovalInputInvalid) as auditor:
        transfer_task(actor=world.approver, task_id=task.id, to_user=world.auditor)
    assert auditor.value.errors == [{"field": "to_user", "message": f"{world.auditor} cannot decide approvals."}]
    assert open_tasks(inst) == [("review", "approver1", "pending"), ("review", "alice", "pending")]


def test_add_signer_before_decides_first(world):
    alice = user("alice")
    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    task = pending(inst, "approver1")
    m = mark()
    added = add_signer(actor=world.approver, task_id=task.id, user=alice, position="before", comment="先请法务看")
    assert tasks(inst) == [
        ("review", "approver1", "waiting", "approver", None),
        ("review", "alice", "pending", "added", None),
    ]
    assert added.reason == f"added by {world.approver}, to decide before them"
    assert ApprovalAction.objects.get(instance=inst, kind="add_signer").detail == {
        "user": "alice",
        "position": "before",
    }
    assert m.events() == ["approvals.signer_added", "approvals.task_created"]
    assert m.audit() == ["approvals.signer_added", "approvals.task_created"]
    with pytest.raises(TaskNotPending):
        decide_task(actor=world.approver, task_id=task.id, decision="approve")
    approve(inst, "alice")
    assert open_tasks(inst) == [("review", "approver1", "pending")]
    assert state_of(order) == OrderState.PENDING_APPROVAL
    approve(inst, "approver1")
    assert state_of(order) == OrderState.APPROVED


def test_add_signer_after_decides_once_the_adder_approves(world):
    alice = user("alice")
    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    m = mark()
    add_signer(actor=world.approver, task_id=pending(inst, "approver1").id, user=alice, position="after")
    assert open_tasks(inst) == [("review", "approver1", "pending"), ("review", "alice", "waiting")]
    assert m.events() == ["approvals.signer_added"]  # nobody is asked yet
    approve(inst, "approver1")
    assert open_tasks(inst) == [("review", "alice", "pending")]
    assert state_of(order) == OrderState.PENDING_APPROVAL  # the node waits for the added signer
    approve(inst, "alice")
    assert state_of(order) == OrderState.APPROVED


def test_add_signer_in_parallel_must_also_approve(world):
    alice = user("alice")
    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    add_signer(actor=world.approver, task_id=pending(inst, "approver1").id, user=alice, position="parallel")
    assert open_tasks(inst) == [("review", "approver1", "pending"), ("review", "alice", "pending")]
    approve(inst, "approver1")
    assert open_tasks(inst) == [("review", "alice", "pending")]
    assert state_of(order) == OrderState.PENDING_APPROVAL
    approve(inst, "alice")
    assert state_of(order) == OrderState.APPROVED


def test_an_added_signer_can_reject(world):
    alice = user("alice")
    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    add_signer(actor=world.approver, task_id=pending(inst, "approver1").id, user=alice, position="parallel")
    reject(inst, "alice")
    assert [t[2] for t in tasks(inst)] == ["cancelled", "rejected"]
    assert state_of(order) == OrderState.REJECTED


def test_add_signer_refusals(world):
    alice = user("alice")
    publish(world, flow(approval("review", "role")))
    _order, inst = submit(world)
    task = pending(inst, "approver1")
    with pytest.raises(ApprovalInputInvalid) as position:
        add_signer(actor=world.approver, task_id=task.id, user=alice, position="instead")
    assert position.value.errors == [{"field": "position", "message": "Position is before, after or parallel."}]
    with pytest.raises(ApprovalInputInvalid) as initiator:
        add_signer(actor=world.approver, task_id=task.id, user=world.pm, position="parallel")
    assert initiator.value.errors == [{"field": "user", "message": "The initiator cannot approve their own request."}]
    assert open_tasks(inst) == [("review", "approver1", "pending")]


def test_withdraw_before_any_decision_sends_the_order_back_to_quotation(world):
    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    m = mark()
    withdraw_approval(actor=world.pm, instance_id=inst.id, comment="金额有误")
    inst.refresh_from_db()
    assert (inst.state, state_of(order)) == ("withdrawn", OrderState.QUOTING)
    assert tasks(inst) == [("review", "approver1", "cancelled", "approver", None)]
    assert steps(inst) == [("review", "approval", "cancelled", 1)]
    assert actions(inst)[-1] == ("withdraw", "pm1", "")
    assert m.events() == ["approvals.approval_withdrawn", "orders.order_transitioned"]
    assert m.audit() == ["approvals.approval_withdrawn", "orders.withdraw"]
    # Submitting again starts a new approval from the start.
    order, fresh = submit(world, order)
    assert fresh.pk != inst.pk
    assert open_tasks(fresh) == [("review", "approver1", "pending")]


def test_withdraw_is_refused_after_a_decision_and_to_others(world):
    alice = user("alice")
    publish(world, flow(approval("review", "users", users=[world.approver, alice], mode="all")))
    order, inst = submit(world)
    with pytest.raises(ApprovalPermissionDenied):
        withdraw_approval(actor=world.admin, instance_id=inst.id)
    approve(inst, "alice")
    with pytest.raises(ApprovalConflict) as caught:
        withdraw_approval(actor=world.pm, instance_id=inst.id)
    assert caught.value.detail == "An approver has already decided; it can no longer be withdrawn."
    assert caught.value.status == 409
    assert state_of(order) == OrderState.PENDING_APPROVAL


def test_nudge_reminds_pending_approvers_at_most_once_an_hour(world):
    publish(world, flow(approval("review", "role")))
    _order, inst = submit(world)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        m = mark()
        nudged = nudge_approval(actor=world.pm, instance_id=inst.id)
        assert [t.assignee.username for t in nudged] == ["approver1"]
        assert actions(inst)[-1] == ("nudge", "pm1", "")
        assert m.events() == ["approvals.approval_nudged"]
        assert m.audit() == ["approvals.approval_nudged"]
    with time_machine.travel(start + timezone.timedelta(minutes=59), tick=False):
        with pytest.raises(ApprovalConflict) as caught:
            nudge_approval(actor=world.pm, instance_id=inst.id)
        assert caught.value.status == 409
    with time_machine.travel(start + timezone.timedelta(hours=1), tick=False):
        assert len(nudge_approval(actor=world.pm, instance_id=inst.id)) == 1
    assert [a[0] for a in actions(inst)].count("nudge") == 2
    with pytest.raises(ApprovalPermissionDenied):
        nudge_approval(actor=world.approver, instance_id=inst.id)


def test_comment_with_an_attachment(world):
    publish(world, flow(approval("review", "role")))
    _order, inst = submit(world)
    m = mark()
    action = comment_approval(
        actor=world.approver, instance_id=inst.id, comment="请补充图纸", attachments=[inspect_upload("a.pdf", PDF)]
    )
    assert actions(inst)[-1] == ("comment", "approver1", "")
    (attachment,) = ActionAttachment.objects.filter(action=action)
    assert (attachment.original_name, attachment.content_type, attachment.size) == (
        "a.pdf",
        "application/pdf",
        len(PDF),
    )
    assert attachment.file.read() == PDF
    assert m.events() == ["approvals.approval_commented"]
    assert m.payloads("approvals.approval_commented")[0]["attachments"] == 1
    assert m.audit() == ["approvals.approval_commented"]
    with pytest.raises(ApprovalInputInvalid):
        comment_approval(actor=world.approver, instance_id=inst.id, comment=" ")
    with pytest.raises(ApprovalPermissionDenied):
        comment_approval(actor=world.auditor, instance_id=inst.id, comment="只读用户")


def test_a_decision_may_carry_an_attachment(world):
    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    task = pending(inst, "approver1")
    decide_task(
        actor=world.approver,
        task_id=task.id,
        decision="reject",
        comment="见批注",
        attachments=[inspect_upload("notes.pdf", PDF)],
    )
    action = ApprovalAction.objects.get(instance=inst, kind="reject")
    assert [a.original_name for a in action.attachments.all()] == ["notes.pdf"]
    assert state_of(order) == OrderState.REJECTED


# --- bulk --------------------------------------------------------------------------------------------


def test_bulk_approve_reports_each_item_and_one_failure_does_not_stop_the_others(world):
    alice = user("alice")
    publish(world, flow(approval("review", "role")))
    first, one = submit(world)
    done, two = submit(world)
    approve(two, "approver1")
    publish(world, flow(approval("legal", "users", users=[alice])), key="legal", priority=5)
    other, three = submit(world)
    last, four = submit(world)
    ids = [
        pending(one, "approver1").id,
        ApprovalTask.objects.get(instance=two).id,  # already approved
        pending(three, "alice").id,  # someone else's
        "00000000-0000-0000-0000-000000000000",  # no such task
    ]
    m = mark()
    results = bulk_decide(actor=world.approver, task_ids=ids, decision="approve", comment="同意")
    assert [(r["task_id"], r["ok"], r["code"]) for r in results] == [
        (str(ids[0]), True, "ok"),
        (str(ids[1]), False, "approval.task_not_pending"),
        (str(ids[2]), False, "approval.permission_denied"),
        (ids[3], False, "approval.task_not_found"),
    ]
    assert results[1]["detail"] == "This task is already Approved; nothing was changed."
    assert state_of(first) == OrderState.APPROVED
    assert (state_of(done), state_of(other), state_of(last)) == (
        OrderState.APPROVED,
        OrderState.PENDING_APPROVAL,
        OrderState.PENDING_APPROVAL,
    )
    assert m.events() == APPROVED_LAST
    assert ApprovalTask.objects.get(id=ids[0]).comment == "同意"


def test_bulk_reject_without_a_comment_changes_nothing(world):
    publish(world, flow(approval("review", "role")))
    first, one = submit(world)
    second, two = submit(world)
    ids = [pending(one, "approver1").id, pending(two, "approver1").id]
    m = mark()
    with pytest.raises(ApprovalInputInvalid) as caught:
        bulk_decide(actor=world.approver, task_ids=ids, decision="reject", comment="")
    assert caught.value.errors == [{"field": "comment", "message": "Give a reason: a comment is required."}]
    assert (m.events(), m.audit()) == ([], [])
    assert (state_of(first), state_of(second)) == (OrderState.PENDING_APPROVAL, OrderState.PENDING_APPROVAL)
    results = bulk_decide(actor=world.approver, task_ids=ids, decision="reject", comment="预算不足")
    assert [r["ok"] for r in results] == [True, True]
    assert (state_of(first), state_of(second)) == (OrderState.REJECTED, OrderState.REJECTED)


# --- the self-approval guard ---------------------------------------------------------------------------


def test_the_initiator_is_replaced_by_their_manager(world):
    people = org(world)
    alice = user("alice")
    publish(world, flow(approval("review", "users", users=[world.pm, alice], mode="all")))
    _order, inst = submit(world)
    assert tasks(inst) == [
        ("review", "lead", "pending", "approver", None),
        ("review", "alice", "pending", "approver", None),
    ]
    assert ApprovalTask.objects.get(instance=inst, assignee=people.lead).reason == (
        f"{world.pm} may not approve their own request; their manager decides"
    )


def test_the_initiator_as_a_pms_source_goes_to_their_manager(world):
    org(world)
    publish(world, flow(approval("pm_check", "project_role", project_role="pm", if_empty="admins")))
    _order, inst = submit(world)
    assert tasks(inst) == [("pm_check", "lead", "pending", "approver", None)]


def test_the_initiator_cannot_decide_be_transferred_or_added_to(world):
    from eoms.approvals.services import migrate_instances, preview_migration, save_definition

    alice = user("alice")
    v1 = publish(world, flow(approval("review", "users", users=[world.pm, alice], allow_self_approval=True)))
    _order, inst = submit(world)
    assert open_tasks(inst) == [("review", "pm1", "pending"), ("review", "alice", "pending")]
    # The flow is changed to guard self-approval, and the running approval is moved onto it.
    draft = save_definition(
        actor=world.admin, definition_id=v1.id, name="flow", document=flow(approval("review", "users", users=[alice]))
    )
    from eoms.approvals.services import publish_definition

    v2 = publish_definition(actor=world.admin, definition_id=draft.id)
    assert preview_migration(actor=world.admin, from_id=v1.id, to_id=v2.id)[0]["restart"] is False
    migrate_instances(actor=world.admin, from_id=v1.id, to_id=v2.id)
    with pytest.raises(ApprovalPermissionDenied) as caught:
        approve(inst, "pm1")
    assert (caught.value.status, caught.value.detail) == (403, "You cannot approve your own request.")
    with pytest.raises(ApprovalInputInvalid) as transfer:
        transfer_task(actor=alice, task_id=pending(inst, "alice").id, to_user=world.pm)
    assert transfer.value.errors == [{"field": "to_user", "message": "The initiator cannot approve their own request."}]
    assert open_tasks(inst) == [("review", "pm1", "pending"), ("review", "alice", "pending")]


def test_allow_self_approval_lets_the_initiator_decide(world):
    publish(world, flow(approval("review", "users", users=[world.pm], allow_self_approval=True)))
    order, inst = submit(world)
    assert tasks(inst) == [("review", "pm1", "pending", "approver", None)]
    approve(inst, "pm1")
    assert state_of(order) == OrderState.APPROVED


# --- approver edits -----------------------------------------------------------------------------------


def test_an_approver_edits_an_allowed_field_while_approving(world):
    people = org(world)
    publish(
        world,
        flow(
            approval("check", "role", editable_fields=["contract_amount"]),
            exclusive(
                "by_amount",
                branch("large", [approval("gm", "users", users=[people.gm])], when([rule("amount", "gte", "500000")])),
                branch("small", [], default=True),
            ),
        ),
    )
    order, inst = submit(world, amount="600000.00")
    task = pending(inst, "approver1")
    with pytest.raises(ApprovalInputInvalid) as refused:
        decide_task(actor=world.approver, task_id=task.id, decision="approve", changes={"title": "新标题"})
    assert refused.value.errors == [
        {"field": "changes.title", "message": "This node does not let approvers edit title."}
    ]
    m = mark()
    decide_task(actor=world.approver, task_id=task.id, decision="approve", changes={"contract_amount": "450000.00"})
    order.refresh_from_db()
    assert order.contract_amount == Decimal("450000.00")
    assert ApprovalAction.objects.get(instance=inst, kind="approve").detail == {
        "changes": {"contract_amount": ["600000.00", "450000.00"]}
    }
    # The branch after the node saw the edited amount: no GM.
    assert order.state == OrderState.APPROVED
    assert m.events() == ["orders.order_updated", *APPROVED_LAST]
    assert m.audit() == ["orders.order_updated", *APPROVED_LAST_AUDIT]


# --- outcomes ------------------------------------------------------------------------------------------


def test_final_rejection_with_on_reject_quoting_sends_the_order_back_to_quotation(world):
    publish(world, flow(approval("review", "role"), on_reject="quoting"))
    order, inst = submit(world)
    m = mark()
    reject(inst, "approver1")
    inst.refresh_from_db()
    assert (inst.state, state_of(order)) == ("rejected", OrderState.QUOTING)
    assert m.audit() == ["approvals.task_decided", "approvals.approval_completed", "orders.return_for_revision"]
    # A new submission starts a new approval.
    order, fresh = submit(world, order)
    assert fresh.pk != inst.pk


def test_users_cannot_take_the_engines_transitions(world):
    publish(world, flow(approval("review", "role")))
    order, _inst = submit(world)
    for name in ("approve", "reject", "return_for_revision", "withdraw"):
        with pytest.raises(OrderPermissionDenied):
            orders.transition_order(actor=world.admin, order_id=order.id, name=name, comment="x")
    assert state_of(order) == OrderState.PENDING_APPROVAL


# --- read-only users -------------------------------------------------------------------------------


def test_auditors_are_never_asked_to_decide(world):
    alice = user("alice")
    publish(
        world, flow(approval("legal", "users", users=[world.auditor, alice], mode="all"), approval("pick", "picked"))
    )
    order = world.order(OrderState.QUOTING)
    with pytest.raises(ApprovalInputInvalid) as caught:
        submit(world, order, picked={"pick": str(world.auditor.pk)})
    assert caught.value.errors == [{"field": "picked.pick", "message": f"{world.auditor} cannot decide approvals."}]
    _order, inst = submit(world, order, picked={"pick": str(world.approver.pk)})
    assert tasks(inst) == [("legal", "alice", "pending", "approver", None)]


def test_a_user_who_became_read_only_cannot_decide_their_task(world):
    from django.contrib.auth.models import Group

    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    task = pending(inst, "approver1")
    world.approver.groups.add(Group.objects.get_or_create(name=Role.AUDITOR)[0])
    from eoms.accounts.selectors import get_active_user

    again = get_active_user(world.approver.pk)  # roles are cached per user object
    with pytest.raises(ApprovalPermissionDenied) as caught:
        decide_task(actor=again, task_id=task.id, decision="approve")
    assert caught.value.detail == "Your role only reads; it cannot decide approvals."
    assert state_of(order) == OrderState.PENDING_APPROVAL


def test_a_malformed_task_id_in_a_bulk_decision_is_not_found(world):
    results = bulk_decide(actor=world.approver, task_ids=["nope"], decision="approve")
    assert [(r["task_id"], r["ok"], r["code"]) for r in results] == [("nope", False, "approval.task_not_found")]


def test_returns_around_a_parallel_block(world):
    alice = user("alice")
    publish(
        world,
        flow(
            approval("intake", "users", users=[alice]),
            parallel(
                "checks",
                branch("money", [approval("finance", "users", users=[world.finance])]),
                branch("technical", [approval("tech", "users", users=[world.engineer])]),
            ),
            approval("final", "role"),
        ),
    )
    order, inst = submit(world)
    approve(inst, "alice")
    approve(inst, "finance1")
    with pytest.raises(ApprovalInputInvalid) as inside:
        reject(inst, "engineer1", return_to="finance")
    assert inside.value.errors == [
        {
            "field": "return_to",
            "message": "Inside a parallel block, return to the initiator or to a node before the block.",
        }
    ]
    approve(inst, "engineer1")
    with pytest.raises(ApprovalInputInvalid) as into:
        reject(inst, "approver1", return_to="tech")
    assert into.value.errors == [
        {"field": "return_to", "message": "“TECH” is inside a parallel block; return to a node before the block."}
    ]
    # Back to before the block: the whole block runs again in the next round.
    reject(inst, "approver1", return_to="intake")
    approve(inst, "alice")
    assert open_tasks(inst) == [("finance", "finance1", "pending"), ("tech", "engineer1", "pending")]
    # To the initiator from inside the block: the resubmission runs the block again.
    reject(inst, "engineer1", return_to="initiator")
    inst.refresh_from_db()
    assert (inst.resume_node, state_of(order)) == ("checks", OrderState.QUOTING)
    order, inst = submit(world, order)
    assert open_tasks(inst) == [("finance", "finance1", "pending"), ("tech", "engineer1", "pending")]
    approve(inst, "finance1")
    approve(inst, "engineer1")
    approve(inst, "approver1")
    assert state_of(order) == OrderState.APPROVED
    assert [s for s in steps(inst) if s[1] == "join"] == [
        ("checks::join", "join", "passed", 1),
        ("checks::join", "join", "passed", 1),
        ("checks::join", "join", "passed", 3),
        ("checks::join", "join", "passed", 3),
    ]


def test_task_boxes_and_counts(world):
    from eoms.approvals.selectors import TaskFilters, list_tasks, task_counts

    from .scenarios import cc

    publish(world, flow(cc("inform", users=[world.approver]), approval("review", "role")))
    _o1, one = submit(world)
    _o2, two = submit(world, title="第二个订单")
    approve(two, "approver1")

    def box(name, **kw):
        return [t.instance_id for t in list_tasks(actor=world.approver, filters=TaskFilters(box=name, **kw))]

    assert box("pending") == [one.id]
    assert box("done") == [two.id]
    assert sorted(box("cc")) == sorted([one.id, two.id])
    assert box("pending", q="第二个") == []
    assert box("nonsense") == []
    assert task_counts(actor=world.approver) == {"pending": 1, "done": 1, "cc": 2, "unread_cc": 2, "delegated": 0}


def test_an_order_cancelled_in_approval_leaves_no_open_task(world):
    """orders' cancel transition ends the approval through end_for_subject (called here as the
    orders context calls it; a second call finds nothing to end)."""
    from eoms.approvals.selectors import TaskFilters, list_tasks
    from eoms.approvals.services import end_for_subject

    publish(world, flow(approval("review", "role")))
    order, inst = submit(world)
    orders.transition_order(actor=world.pm, order_id=order.id, name="cancel", comment="客户取消")
    end_for_subject(actor=world.pm, subject_type="orders.order", subject_id=order.id, comment="客户取消")
    inst.refresh_from_db()
    assert (inst.state, state_of(order)) == ("withdrawn", OrderState.CANCELLED)
    assert tasks(inst) == [("review", "approver1", "cancelled", "approver", None)]
    assert ApprovalAction.objects.get(instance=inst, kind="withdraw").detail == {"cause": "subject_ended"}
    assert list(list_tasks(actor=world.approver, filters=TaskFilters(box="pending"))) == []
    assert end_for_subject(actor=world.pm, subject_type="orders.order", subject_id=order.id) is None


def test_return_targets_are_what_a_rejection_accepts(world):
    """engine.return_targets lists exactly the nodes decide_task takes as return_to, around a
    parallel block too."""
    from eoms.approvals.engine import return_targets
    from eoms.approvals.services import decide_task

    alice = user("alice")
    publish(
        world,
        flow(
            approval("intake", "users", users=[alice]),
            parallel(
                "checks",
                branch("money", [approval("finance", "users", users=[world.finance])]),
                branch("technical", [approval("tech", "users", users=[world.engineer])]),
            ),
            approval("final", "role"),
        ),
    )
    order, inst = submit(world)
    first = pending(inst, "alice")
    assert return_targets(inst, first.step) == []
    approve(inst, "alice")
    approve(inst, "finance1")
    tech = pending(inst, "engineer1")
    assert return_targets(inst, tech.step) == [("intake", "INTAKE")]
    approve(inst, "engineer1")
    final = pending(inst, "approver1")
    offered = return_targets(inst, final.step)
    assert offered == [("intake", "INTAKE")]
    for node_id in ("finance", "tech", "final"):  # not offered, and refused
        with pytest.raises(ApprovalInputInvalid):
            decide_task(actor=world.approver, task_id=final.pk, decision="reject", comment="x", return_to=node_id)
    decide_task(actor=world.approver, task_id=final.pk, decision="reject", comment="再核", return_to="intake")
    assert open_tasks(inst) == [("intake", "alice", "pending")]


def test_a_cc_is_read_once_by_its_recipient(world):
    """read_cc: the recipient's copy becomes read with one audit entry and one outbox message;
    reading again records nothing; someone else's copy 403; a task that is not a copy 409."""
    from eoms.approvals.errors import ApprovalConflict, ApprovalPermissionDenied
    from eoms.approvals.models import TaskState
    from eoms.approvals.services import read_cc
    from eoms.core.models import AuditEntry

    from .scenarios import cc

    publish(world, flow(cc("inform", users=[world.finance]), approval("review", "role")))
    order, inst = submit(world)
    copy = inst.tasks.get(kind="cc")
    with pytest.raises(ApprovalPermissionDenied):
        read_cc(actor=world.approver, task_id=copy.pk)
    with pytest.raises(ApprovalConflict):
        read_cc(actor=world.approver, task_id=pending(inst, "approver1").pk)
    m = mark()
    read = read_cc(actor=world.finance, task_id=copy.pk)
    copy.refresh_from_db()
    assert (read.state, copy.state, copy.version) == (TaskState.READ, TaskState.READ, 2)
    assert copy.decided_at is not None
    assert m.events() == ["approvals.cc_read"]
    assert m.audit() == ["approvals.cc_read"]
    entry = AuditEntry.objects.get(id__gt=m.audit_id)
    assert (entry.actor_id, entry.changes["node"]) == (world.finance.pk, "INFORM")
    again = mark()
    read_cc(actor=world.finance, task_id=copy.pk)
    assert again.events() == [] and again.audit() == []
