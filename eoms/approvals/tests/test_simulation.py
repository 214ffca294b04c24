"""Simulation ("who would approve this order, in what order, and why") and the dry run of a draft
against recent orders: exact stages and reasons, and nothing written."""

import pytest
from django.utils import timezone

from eoms.accounts.services import set_delegation
from eoms.approvals.errors import ApprovalInputInvalid, ApprovalPermissionDenied
from eoms.approvals.models import ApprovalAction, ApprovalDefinition, ApprovalInstance, ApprovalStep, ApprovalTask
from eoms.approvals.services import dry_run, save_definition, simulate
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.orders.models import Order, OrderHistory
from eoms.orders.state import OrderState

from .scenarios import approval, branch, cc, exclusive, flow, org, parallel, publish, rule, user, when

MODELS = (ApprovalInstance, ApprovalStep, ApprovalTask, ApprovalAction, ApprovalDefinition, AuditEntry, OutboxMessage)


def counts():
    return [m.objects.count() for m in (*MODELS, Order, OrderHistory)]


def thresholds(people, *, large: str = "500000"):
    return flow(
        approval("dept", "users", users=[people.head]),
        exclusive(
            "by_amount",
            branch(
                "huge",
                [approval("gm_huge", "users", users=[people.gm]), approval("chair", "users", users=[people.chairman])],
                when([rule("amount", "gte", "5000000")]),
            ),
            branch("large", [approval("gm", "users", users=[people.gm])], when([rule("amount", "gte", large)])),
            branch("small", [], default=True),
        ),
    )


def brief(stages):
    return [
        (s["node_id"], s["kind"], s["mode"], [str(a["user"].username) for a in s["approvers"]], s["reason"])
        for s in stages
    ]


def test_simulation_lists_stages_with_approvers_and_reasons_and_writes_nothing(world):
    people = org(world)
    definition = publish(world, thresholds(people))
    order = world.order(OrderState.QUOTING, amount="600000.00")
    before = counts()
    result = simulate(actor=world.pm, subject_type="orders.order", subject_id=order.id)
    assert counts() == before
    assert (result["definition"], result["why"], result["subject"].id) == (definition, "default flow", str(order.id))
    assert brief(result["stages"]) == [
        ("dept", "approval", "any", ["head"], ""),
        ("gm", "approval", "any", ["gm"], "contract amount ≥ 500,000 → LARGE"),
    ]
    assert result["stages"][1]["approvers"] == [
        {"user": people.gm, "reason": "named in the flow", "on_behalf_of": None}
    ]
    big = world.order(OrderState.QUOTING, amount="5000000.00")
    assert brief(simulate(actor=world.pm, subject_type="orders.order", subject_id=big.id)["stages"]) == [
        ("dept", "approval", "any", ["head"], ""),
        ("gm_huge", "approval", "any", ["gm"], "contract amount ≥ 5,000,000 → HUGE"),
        ("chair", "approval", "any", ["chairman"], ""),
    ]
    small = world.order(OrderState.QUOTING, amount="100.00")
    assert brief(simulate(actor=world.pm, subject_type="orders.order", subject_id=small.id)["stages"]) == [
        ("dept", "approval", "any", ["head"], "")
    ]


def test_simulation_of_parallel_chain_cc_and_fallbacks(world):
    org(world)
    doc = flow(
        cc("inform", users=[world.finance]),
        parallel(
            "checks",
            branch(
                "money",
                [
                    exclusive(
                        "money_route",
                        branch("big", [approval("cfo", "role")], when([rule("amount", "gte", "500000")])),
                        branch("small", [], default=True),
                    )
                ],
            ),
            branch("site", [approval("tech", "project_role", project_role="engineer", if_empty="admins")]),
        ),
        approval("chain", "manager", levels=2, chain=True, if_empty="admins"),
        approval("owner", "field", field="created_by", if_empty="approve"),
    )
    publish(world, doc)
    order = world.order(OrderState.QUOTING, amount="800000.00")
    stages = simulate(actor=world.pm, subject_type="orders.order", subject_id=order.id)["stages"]
    assert [(s["node_id"], s["parallel"], s["reason"], s["note"]) for s in stages] == [
        ("inform", "", "", ""),
        ("cfo", "CHECKS: MONEY", "contract amount ≥ 500,000 → BIG", ""),
        ("tech", "CHECKS: SITE", "", ""),
        ("chain", "", "", ""),
        ("owner", "", "", ""),
    ]
    assert brief(stages)[3] == ("chain", "approval", "sequence", ["lead", "head"], "")
    assert stages[0]["approvers"][0]["user"] == world.finance
    # The creator is the initiator: their manager decides in their place.
    assert brief(stages)[4] == ("owner", "approval", "any", ["lead"], "")


def test_simulation_applies_the_guard_to_the_submitter_not_the_viewer(world):
    people = org(world)
    publish(world, flow(approval("own", "users", users=[world.pm, world.approver])))
    order = world.order(OrderState.QUOTING)
    for viewer in (world.admin, world.pm):
        stages = simulate(actor=viewer, subject_type="orders.order", subject_id=order.id)["stages"]
        assert [a["user"] for a in stages[0]["approvers"]] == [people.lead, world.approver]
    stages = simulate(actor=world.admin, subject_type="orders.order", subject_id=order.id, initiator=world.admin)[
        "stages"
    ]
    assert [a["user"] for a in stages[0]["approvers"]] == [world.pm, world.approver]


def test_simulation_shows_delegation_and_picks(world):
    alice, bob = user("alice"), user("bob")
    today = timezone.localdate()
    set_delegation(actor=world.approver, user=world.approver, deputy=alice, starts_on=today, ends_on=today)
    publish(world, flow(approval("review", "role"), approval("chosen", "picked")))
    order = world.order(OrderState.QUOTING)
    result = simulate(actor=world.pm, subject_type="orders.order", subject_id=order.id, picked={"chosen": bob.id})
    review, chosen = result["stages"]
    assert review["approvers"] == [{"user": alice, "reason": "has the role Approver", "on_behalf_of": world.approver}]
    assert [a["user"] for a in chosen["approvers"]] == [bob]
    # Without a pick (or with junk), administrators would decide; nothing fails.
    for picked in (None, {"chosen": "junk"}):
        result = simulate(actor=world.pm, subject_type="orders.order", subject_id=order.id, picked=picked)
        assert ([a["user"] for a in result["stages"][1]["approvers"]], result["stages"][1]["note"]) == (
            [world.admin],
            "admins",
        )


def test_simulation_of_a_draft_and_of_an_invisible_order(world):
    people = org(world)
    draft = save_definition(actor=world.admin, name="草稿", key="draft", document=thresholds(people))
    order = world.order(OrderState.QUOTING, amount="700000.00")
    result = simulate(actor=world.admin, subject_type="orders.order", subject_id=order.id, definition_id=draft.id)
    assert (result["definition"], result["why"]) == (draft, "chosen for the simulation")
    assert [s["node_id"] for s in result["stages"]] == ["dept", "gm"]
    from eoms.orders.errors import OrderNotFound

    with pytest.raises(OrderNotFound):
        simulate(actor=world.outsider, subject_type="orders.order", subject_id=order.id)


def test_dry_run_flags_the_orders_a_draft_would_route_differently(world):
    people = org(world)
    published = publish(world, thresholds(people), key="amounts", name="金额审批")
    orders = [
        world.order(OrderState.QUOTING, amount="300000.00", title="小"),
        world.order(OrderState.QUOTING, amount="700000.00", title="中"),
        world.order(OrderState.QUOTING, amount="2000000.00", title="大"),
    ]
    # Raise the GM threshold to 1,000,000 in a new revision.
    draft = save_definition(
        actor=world.admin,
        definition_id=published.id,
        name="金额审批",
        document=thresholds(people, large="1000000"),
        is_default=True,
        priority=10,
    )
    before = counts()
    result = dry_run(actor=world.admin, definition_id=draft.id, limit=3)
    assert counts() == before
    assert result["problems"] == []
    rows = result["rows"]
    assert [r["subject"].id for r in rows] == [str(o.id) for o in reversed(orders)]  # newest first
    assert [(r["current_flow"], r["draft_flow"], r["differs"]) for r in rows] == [
        ("金额审批 v1", "金额审批 v2", False),
        ("金额审批 v1", "金额审批 v2", True),
        ("金额审批 v1", "金额审批 v2", False),
    ]
    assert rows[1]["current"] == [{"node": "DEPT", "users": ["head"]}, {"node": "GM", "users": ["gm"]}]
    assert rows[1]["draft"] == [{"node": "DEPT", "users": ["head"]}]


def test_dry_run_reports_the_drafts_problems_and_checks_its_input(world):
    draft = save_definition(actor=world.admin, name="坏草稿", document=flow(approval("boss", "manager")))
    result = dry_run(actor=world.admin, definition_id=draft.id, limit=5)
    assert [p["field"] for p in result["problems"]] == ["node:boss"]
    for limit in (0, 501, "many"):
        with pytest.raises(ApprovalInputInvalid) as caught:
            dry_run(actor=world.admin, definition_id=draft.id, limit=limit)
        assert caught.value.errors == [{"field": "limit", "message": "Choose from 1 to 500 orders."}]
    with pytest.raises(ApprovalPermissionDenied):
        dry_run(actor=world.pm, definition_id=draft.id)


def test_dry_run_when_the_draft_applies_to_other_orders(world):
    """A new flow (own key) for design orders: only they change route."""
    alice = user("alice")
    construction = world.order(OrderState.QUOTING, amount="1000.00")
    draft = save_definition(
        actor=world.admin,
        name="设计审批",
        key="design",
        document=flow(approval("designer", "users", users=[alice])),
        priority=1,
        applies_when=when([rule("kind", "eq", "design")]),
    )
    from eoms.orders import services as orders

    design = orders.create_order(
        actor=world.pm,
        project=world.project,
        title="设计",
        contract_amount="1000.00",
        kind="design",
    )
    rows = dry_run(actor=world.admin, definition_id=draft.id, limit=10)["rows"]
    by_id = {r["subject"].id: r for r in rows}
    assert (by_id[str(design.id)]["draft_flow"], by_id[str(design.id)]["differs"]) == ("设计审批 v1", True)
    assert (by_id[str(construction.id)]["draft_flow"], by_id[str(construction.id)]["differs"]) == (
        "Simple review v1",
        False,
    )
