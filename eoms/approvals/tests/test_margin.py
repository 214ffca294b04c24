"""Gross margin (毛利率) as a condition of approval flows: the fact orders give the engine, how a
rule on it evaluates (an order without a cost estimate has no margin), routing of simulated and
real submissions through a "margin < 10 %" branch, an approver's cost edit re-routing the flow, and
the editor offering the field."""

import json
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from eoms.approvals.definition import Condition, evaluate
from eoms.approvals.services import decide_task, simulate
from eoms.approvals.subjects import get_adapter
from eoms.orders import services as orders
from eoms.orders.state import OrderState

from .scenarios import approval, branch, exclusive, flow, open_tasks, org, pending, publish, rule, steps, submit, when

ORDER = "orders.order"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def quoted(world, *, amount="1000000.00", cost=None):
    """An order in QUOTING with the quotation's estimated cost (None: not given)."""
    order = world.order(OrderState.QUOTING, amount=amount)
    if cost is not None:
        order = orders.update_order(actor=world.pm, order_id=order.id, changes={"estimated_cost": cost})
    return order


def low_margin_flow(people, **head):
    """The department head approves; below 10 % margin the general manager too."""
    return flow(
        approval("dept", "users", users=[people.head], **head),
        exclusive(
            "by_margin",
            branch("low", [approval("gm", "users", users=[people.gm])], when([rule("margin", "lt", "10")])),
            branch("normal", [], default=True),
        ),
    )


def brief(stages):
    return [(s["node_id"], [a["user"].username for a in s["approvers"]], s["reason"]) for s in stages]


# The fact ------------------------------------------------------------------------------------------


def test_orders_offer_margin_as_a_decimal_field_and_fact(world):
    adapter = get_adapter(ORDER)
    spec = {f.name: f for f in adapter.fields()}["margin"]
    assert (spec.type, str(spec.label), spec.choices) == ("decimal", "gross margin (%)", ())
    with translation.override("zh-hans"):
        assert str(spec.label) == "毛利率（%）"
    assert "estimated_cost" in {f.name for f in adapter.editable_fields()}
    order = quoted(world, amount="1000000.00", cost="815000.00")
    assert adapter.load(order.id).facts["margin"] == Decimal("18.50")
    assert adapter.load(quoted(world).id).facts["margin"] is None


OPERATOR_CASES = [
    # operator, value, result at margin 8.00, result without a margin (None)
    ("eq", "8", True, False),
    ("ne", "8", False, True),
    ("gt", "7.99", True, False),
    ("gte", "8.00", True, False),
    ("lt", "10", True, False),
    ("lte", "8", True, False),
    ("in", ["8", "9"], True, False),
    ("not_in", ["8", "9"], False, True),
]


@pytest.mark.parametrize(("operator", "value", "at_eight", "without"), OPERATOR_CASES)
def test_a_rule_on_margin_without_a_cost_holds_only_for_not_equal_and_none_of(
    world, operator, value, at_eight, without
):
    """definition._test's rule for an empty fact: only ≠ and ∉ hold (an empty value is not equal
    to any number and in no list); there is no "is empty" operator."""
    fields = {f.name: f for f in get_adapter(ORDER).fields()}
    condition = Condition.model_validate(when([rule("margin", operator, value)]))
    assert evaluate(condition, {"margin": Decimal("8.00")}, fields) is at_eight
    assert evaluate(condition, {"margin": None}, fields) is without
    assert evaluate(condition, {}, fields) is without


# Routing -------------------------------------------------------------------------------------------


def test_simulation_routes_only_a_low_margin_order_through_the_extra_node(world):
    people = org(world)
    definition = publish(world, low_margin_flow(people))
    low = quoted(world, cost="920000.00")  # 8.00 %
    high = quoted(world, cost="800000.00")  # 20.00 %
    unknown = quoted(world)  # no estimate: no margin
    edge = quoted(world, cost="900000.00")  # exactly 10.00 %: not below

    result = simulate(actor=world.pm, subject_type=ORDER, subject_id=low.id)
    assert result["definition"] == definition
    assert brief(result["stages"]) == [
        ("dept", ["head"], ""),
        ("gm", ["gm"], "gross margin (%) < 10 → LOW"),
    ]
    for order in (high, unknown, edge):
        assert brief(simulate(actor=world.pm, subject_type=ORDER, subject_id=order.id)["stages"]) == [
            ("dept", ["head"], "")
        ]


def test_real_submissions_follow_the_margin_branch(world):
    people = org(world)
    publish(world, low_margin_flow(people))

    low, instance = submit(world, quoted(world, cost="920000.00"))
    decide_task(actor=people.head, task_id=pending(instance, "head").id, decision="approve")
    assert open_tasks(instance) == [("gm", "gm", "pending")]
    decide_task(actor=people.gm, task_id=pending(instance, "gm").id, decision="approve")
    low.refresh_from_db()
    assert low.state == OrderState.APPROVED
    assert [(node, kind, state) for node, kind, state, _round in steps(instance)] == [
        ("dept", "approval", "approved"),
        ("by_margin", "split", "passed"),
        ("gm", "approval", "approved"),
    ]

    for order in (quoted(world, cost="800000.00"), quoted(world)):
        order, instance = submit(world, order)
        decide_task(actor=people.head, task_id=pending(instance, "head").id, decision="approve")
        order.refresh_from_db()
        assert order.state == OrderState.APPROVED
        assert [(node, kind, state) for node, kind, state, _round in steps(instance)] == [
            ("dept", "approval", "approved"),
            ("by_margin", "split", "passed"),
        ]


def test_an_approver_raising_the_cost_sends_the_order_to_the_low_margin_node(world):
    people = org(world)
    publish(world, low_margin_flow(people, editable_fields=["estimated_cost"]))
    order, instance = submit(world, quoted(world, cost="800000.00"))  # 20 %: no GM as submitted
    decide_task(
        actor=people.head,
        task_id=pending(instance, "head").id,
        decision="approve",
        changes={"estimated_cost": "950000.00"},  # 5 %
    )
    order.refresh_from_db()
    assert (order.estimated_cost, order.margin, order.state) == (
        Decimal("950000.00"),
        Decimal("5.00"),
        OrderState.PENDING_APPROVAL,
    )
    assert open_tasks(instance) == [("gm", "gm", "pending")]


# The editor --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "label"), [("en", "gross margin (%)"), ("zh-hans", "毛利率（%）")])
def test_the_flow_editor_offers_margin_with_the_numeric_operators(world, language, label):
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(world.admin)
    response = client.get(reverse("approvals:definition_new"))
    assert response.status_code == 200
    meta = response.context["meta"]
    fields = {f["name"]: f for f in meta["fields"]}
    assert fields["margin"] == {"name": "margin", "label": label, "type": "decimal", "choices": []}
    assert [f["name"] for f in meta["fields"]][:2] == ["amount", "margin"]
    assert meta["operators"]["decimal"] == ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in"]
    assert "estimated_cost" in [e["name"] for e in meta["editable"]]
    html = response.content.decode()
    embedded = html.split('id="flow-editor-meta"')[1].split(">", 1)[1].split("</script>")[0]
    assert {f["name"]: f["label"] for f in json.loads(embedded)["fields"]}["margin"] == label
