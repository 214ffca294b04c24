"""Flow definitions: validation before publishing (each problem named by its node, exact text),
malformed documents refused when saved, revisions (draft → published → superseded), and which
published flow applies to an order."""

import pytest

from eoms.accounts.roles import Role
from eoms.approvals.errors import (
    ApprovalPermissionDenied,
    DefinitionConflict,
    DefinitionInvalid,
    NoApplicableFlow,
)
from eoms.approvals.models import ApprovalDefinition
from eoms.approvals.services import check_definition, publish_definition, save_definition, select_definition
from eoms.approvals.subjects import get_adapter
from eoms.orders import services as orders
from eoms.orders.state import OrderState

from .scenarios import approval, branch, cc, exclusive, flow, instance_of, mark, parallel, publish, rule, submit, user
from .scenarios import when as condition


def problems(world, document, **kw):
    definition = save_definition(actor=world.admin, name="审批流", key="check", document=document, **kw)
    return check_definition(definition)


def messages(world, document, **kw):
    return [(p["field"], p["message"]) for p in problems(world, document, **kw)]


def amount_branch(*branches):
    return flow(exclusive("route", *branches), approval("review", "role"))


def test_a_sound_flow_has_no_problem(world):
    doc = amount_branch(
        branch("big", [approval("gm", "role")], condition([rule("amount", "gte", "500000")])),
        branch("small", [], default=True),
    )
    assert problems(world, doc) == []


def test_problems_name_their_node_and_are_all_listed_when_publishing(world):
    doc = flow(
        approval("a", "role", mode="quorum", quorum={"count": 2}, on_timeout="approve"),
        approval("a", "manager"),
    )
    definition = save_definition(actor=world.admin, name="审批流", key="check", document=doc)
    with pytest.raises(DefinitionInvalid) as caught:
        publish_definition(actor=world.admin, definition_id=definition.id)
    assert caught.value.status == 422
    assert caught.value.detail == "审批流 v1 cannot be published: 3 problem(s)."
    assert caught.value.errors == [
        {"field": "node:a", "node": "a", "message": "Node “A”: a timeout action needs an SLA in hours."},
        {"field": "node:a", "node": "a", "message": "Two nodes share the id “a”; ids must be unique."},
        {
            "field": "node:a",
            "node": "a",
            "message": "Node “A”: its approvers can be empty (no manager, no PM, an empty field); "
            "choose what happens then: send to administrators or approve automatically.",
        },
    ]
    definition.refresh_from_db()
    assert definition.status == "draft"


def test_contradictory_condition_is_unreachable(world):
    doc = amount_branch(
        branch("odd", [], condition([rule("amount", "gte", "1000000"), rule("amount", "lt", "500000")])),
        branch("rest", [], default=True),
    )
    assert messages(world, doc) == [("node:odd", "Branch “ODD” is unreachable: its condition can never hold.")]


def test_two_equalities_on_one_field_are_unreachable(world):
    doc = amount_branch(
        branch("odd", [], condition([rule("region", "eq", "east"), rule("region", "eq", "north")])),
        branch("rest", [], default=True),
    )
    assert messages(world, doc) == [("node:odd", "Branch “ODD” is unreachable: its condition can never hold.")]


def test_same_condition_as_an_earlier_branch_is_unreachable(world):
    same = condition([rule("amount", "gte", "500000"), rule("kind", "eq", "design")])
    swapped = condition([rule("kind", "eq", "design"), rule("amount", "gte", "500000")])
    doc = amount_branch(branch("first", [], same), branch("again", [], swapped), branch("rest", [], default=True))
    assert messages(world, doc) == [
        ("node:again", "Branch “AGAIN” is unreachable: an earlier branch has the same condition.")
    ]


def shadow(world, first, second):
    ApprovalDefinition.objects.filter(key="check").delete()
    doc = amount_branch(branch("first", [], first), branch("second", [], second), branch("rest", [], default=True))
    return messages(world, doc)


SHADOWED = [("node:second", "Branch “SECOND” is unreachable: the earlier branch “FIRST” takes every case.")]


def test_thresholds_listed_in_the_wrong_order_leave_a_branch_unreachable(world):
    large = condition([rule("amount", "gte", "500000")])
    huge = condition([rule("amount", "gte", "5000000")])
    assert shadow(world, large, huge) == SHADOWED
    assert shadow(world, huge, large) == []


@pytest.mark.parametrize(
    ("first", "second", "shadowed"),
    [
        ([rule("customer_grade", "in", ["A", "B"])], [rule("customer_grade", "eq", "A")], True),
        ([rule("customer_grade", "eq", "A")], [rule("customer_grade", "in", ["A", "B"])], False),
        ([rule("amount", "gte", "1000000")], [rule("amount", "gte", "2000000"), rule("kind", "eq", "design")], True),
        ([rule("amount", "gte", "1000000"), rule("kind", "eq", "design")], [rule("amount", "gte", "2000000")], False),
        ([rule("region", "ne", "east")], [rule("region", "eq", "north")], True),
        ([rule("region", "ne", "east")], [rule("region", "not_in", ["east", "north"])], True),
        ([rule("region", "not_in", ["east", "north"])], [rule("region", "ne", "east")], False),
        ([rule("amount", "lt", "500000")], [rule("amount", "lt", "100000")], True),
        ([rule("amount", "lt", "500000")], [rule("amount", "lte", "500000")], False),
        ([rule("amount", "gt", "100")], [rule("amount", "gte", "100")], False),
        ([rule("amount", "gt", "100")], [rule("amount", "gte", "100.01")], True),
        ([rule("amount", "gte", "100"), rule("amount", "lte", "200")], [rule("amount", "eq", "150")], True),
        ([rule("amount", "gte", "100"), rule("amount", "lte", "200")], [rule("amount", "in", ["150", "250"])], False),
        ([rule("title", "contains", "道路")], [rule("title", "eq", "市政道路工程")], True),
        ([rule("title", "contains", "道路")], [rule("title", "contains", "市政道路")], False),  # cannot tell: kept
    ],
)
def test_a_branch_shadowed_by_an_earlier_one(world, first, second, shadowed):
    assert shadow(world, condition(first), condition(second)) == (SHADOWED if shadowed else [])


def test_a_branch_with_one_case_left_open_is_reachable(world):
    earlier = condition([rule("amount", "gte", "1000000")])
    either = condition([rule("amount", "gte", "2000000")], [rule("customer_grade", "eq", "A")])
    assert shadow(world, earlier, either) == []
    both_covered = condition([rule("amount", "gte", "2000000")], [rule("amount", "gte", "3000000")])
    assert shadow(world, earlier, both_covered) == SHADOWED


def test_a_branch_set_needs_exactly_one_default(world):
    message = "Branch “ROUTE”: exactly one branch must be the default (taken when no condition holds)."
    without = amount_branch(
        branch("big", [], condition([rule("amount", "gte", "500000")])),
        branch("small", [], condition([rule("amount", "lt", "500000")])),
    )
    assert messages(world, without) == [("node:route", message)]
    ApprovalDefinition.objects.filter(key="check").delete()
    two = amount_branch(branch("one", [], default=True), branch("two", [], default=True))
    assert messages(world, two) == [("node:route", message)]


def test_branch_shape_problems(world):
    doc = flow(
        exclusive(
            "route",
            branch("lonely", [], default=True),
        ),
        parallel("both", branch("p1", [approval("x", "role")]), branch("p2", [cc("note", users=[world.finance])])),
        approval("review", "role"),
    )
    assert messages(world, doc) == [
        ("node:route", "Branch “ROUTE”: add at least two branches."),
        ("node:p2", "Parallel branch “P2” has no approval node."),
    ]
    ApprovalDefinition.objects.filter(key="check").delete()
    doc = amount_branch(
        branch("cond", [], None), branch("rest", [], condition([rule("amount", "gt", "1")]), default=True)
    )
    assert messages(world, doc) == [
        ("node:cond", "Branch “COND”: give it a condition."),
        ("node:rest", "Branch “REST”: the default branch takes no condition."),
    ]


def test_approvers_that_can_be_empty(world):
    gone = user("gone")
    gone.is_active = False
    gone.save()
    world.finance.is_active = False
    world.finance.save()
    doc = flow(
        approval("finance", "role", role=Role.FINANCE),
        approval("legal", "users", users=[gone]),
        approval("nobody", "users", users=[]),
        approval("boss", "manager"),
        approval("pm", "project_role", project_role="pm"),
        approval("owner", "field", field="project_manager"),
        approval("fallback", "manager", if_empty="admins"),
    )
    dynamic = (
        "its approvers can be empty (no manager, no PM, an empty field); "
        "choose what happens then: send to administrators or approve automatically."
    )
    assert messages(world, doc) == [
        ("node:finance", "Node “FINANCE”: no active user has the role finance."),
        ("node:legal", "Node “LEGAL”: none of its named users is an active user."),
        ("node:nobody", "Node “NOBODY”: name at least one approver."),
        ("node:boss", f"Node “BOSS”: {dynamic}"),
        ("node:pm", f"Node “PM”: {dynamic}"),
        ("node:owner", f"Node “OWNER”: {dynamic}"),
    ]


def test_a_read_only_role_cannot_approve_but_may_be_copied(world):
    doc = flow(approval("audit", "role", role=Role.AUDITOR), cc("copy", "role", role=Role.AUDITOR))
    assert messages(world, doc) == [("node:audit", "Node “AUDIT”: the role auditor only reads; it cannot approve.")]


def test_source_settings_must_be_complete(world):
    doc = flow(
        approval("r", "role", role=""),
        approval("p", "project_role", project_role="boss", if_empty="admins"),
        approval("f", "field", field="customer", if_empty="admins"),
    )
    assert messages(world, doc) == [
        ("node:r", "Node “R”: choose a role."),
        ("node:p", "Node “P”: choose the project role (PM or engineer)."),
        (
            "node:f",
            "Node “F”: “customer” is not a field holding a user; "
            "choose one of created_by, project_manager, stage_owner.",
        ),
    ]


def test_a_flow_needs_an_approval_node(world):
    assert messages(world, flow(cc("note", users=[world.finance]))) == [
        ("document", "The flow has no approval node; add one.")
    ]
    ApprovalDefinition.objects.filter(key="check").delete()
    assert problems(world, flow()) == [
        {"field": "document", "node": "", "message": "The flow has no approval node; add one."}
    ]


def test_duplicate_ids_between_nodes_and_branches(world):
    doc = amount_branch(
        branch("review", [], condition([rule("amount", "gte", "1")])),
        branch("rest", [], default=True),
    )
    assert messages(world, doc) == [("node:review", "Two nodes share the id “review”; ids must be unique.")]


def test_quorum_problems(world):
    a, b = user("alice"), user("bob")
    doc = flow(
        approval("q3", "users", users=[a, b], mode="quorum", quorum={"count": 3}),
        approval("none", "role", mode="quorum"),
        approval("both", "role", mode="quorum", quorum={"count": 1, "percent": 50}),
        approval("stray", "role", mode="all", quorum={"count": 1}),
        approval("pick", "picked", mode="quorum", quorum={"count": 2}),
    )
    assert messages(world, doc) == [
        ("node:q3", "Node “Q3”: a quorum of 3 needs at least 3 approvers."),
        ("node:none", "Node “NONE”: a quorum needs either a number of approvals or a percentage."),
        ("node:both", "Node “BOTH”: a quorum needs either a number of approvals or a percentage."),
        ("node:stray", "Node “STRAY”: a quorum applies only in quorum mode."),
        ("node:pick", "Node “PICK”: one picked approver cannot reach a quorum of 2."),
    ]


def test_sla_problems(world):
    doc = flow(
        approval("late", "role", on_timeout="escalate"),
        approval("early", "role", sla_hours=4, remind_after_hours=4),
    )
    assert messages(world, doc) == [
        ("node:late", "Node “LATE”: a timeout action needs an SLA in hours."),
        ("node:early", "Node “EARLY”: the reminder must come before the SLA ends."),
    ]


def test_condition_problems_name_the_branch(world):
    fields = "amount, customer_grade, kind, level, margin, project_code, project_type, region, tax_rate, title"
    doc = amount_branch(
        branch("profit", [], condition([rule("profit", "gt", "0.1")])),
        branch("region", [], condition([rule("region", "gt", "east")])),
        branch("number", [], condition([rule("amount", "gte", "abc")])),
        branch("choice", [], condition([rule("region", "eq", "mars")])),
        branch("listed", [], condition([rule("kind", "in", "design")])),
        branch("rest", [], default=True),
    )
    assert messages(world, doc) == [
        ("node:profit", f"Branch “PROFIT”: unknown field “profit”; choose one of {fields}."),
        ("node:region", "Branch “REGION”: “>” does not apply to region."),
        ("node:number", "Branch “NUMBER”: “abc” is not a number."),
        ("node:choice", "Branch “CHOICE”: “mars” is not a value of region."),
        ("node:listed", "Branch “LISTED”: give a list of values for in / not in, one value otherwise."),
    ]


def test_an_unknown_operator_is_refused_when_saved_naming_the_branch(world):
    doc = amount_branch(
        branch("big", [], condition([rule("amount", "between", "1")])),
        branch("rest", [], default=True),
    )
    with pytest.raises(DefinitionInvalid) as caught:
        save_definition(actor=world.admin, name="审批流", document=doc)
    assert caught.value.errors == [
        {
            "field": "document.nodes.0.branch.branches.0.when.any_of.0.0.operator",
            "node": "big",
            "message": "Branch “BIG”: unknown operator “between”; "
            "use one of eq, ne, gt, gte, lt, lte, in, not_in, contains.",
        }
    ]
    bad_mode = flow(approval("a", "role", mode="majority"))
    with pytest.raises(DefinitionInvalid) as caught:
        save_definition(actor=world.admin, name="审批流", document=bad_mode)
    assert [(e["field"], e["node"]) for e in caught.value.errors] == [("document.nodes.0.approval.mode", "a")]
    assert caught.value.errors[0]["message"].startswith("Node “A”: mode: Input should be 'any', 'all'")
    assert ApprovalDefinition.objects.filter(name="审批流").count() == 0


def test_editable_fields_must_be_editable(world):
    doc = flow(approval("check", "role", editable_fields=["contract_amount", "project", "customer"]))
    assert messages(world, doc) == [
        (
            "node:check",
            "Node “CHECK”: approvers cannot edit project, customer; editable are contract_amount, description, "
            "estimated_cost, tax_rate, title.",
        )
    ]


def test_applies_when_is_checked_too(world):
    doc = flow(approval("review", "role"))
    assert messages(world, doc, applies_when=condition([rule("amount", "gte", "lots")])) == [
        ("applies_when", "Branch “Applies when”: “lots” is not a number.")
    ]


# --- revisions -----------------------------------------------------------------------------------------


def test_revisions_draft_published_superseded(world):
    doc = flow(approval("review", "role"))
    m = mark()
    v1 = save_definition(actor=world.admin, name="合同审批", key="contract", document=doc)
    assert (v1.key, v1.revision, v1.status, v1.version) == ("contract", 1, "draft", 1)
    # A draft is edited in place.
    v1 = save_definition(actor=world.admin, definition_id=v1.id, name="合同审批", document=doc, priority=5)
    assert (v1.revision, v1.status, v1.version, v1.priority) == (1, "draft", 2, 5)
    v1 = publish_definition(actor=world.admin, definition_id=v1.id)
    assert (v1.status, v1.published_by) == ("published", world.admin)
    # Editing the published revision makes revision 2 as a draft; revision 1 stays published.
    v2 = save_definition(
        actor=world.admin, definition_id=v1.id, name="合同审批", document=flow(approval("check", "role"))
    )
    v1.refresh_from_db()
    assert (v2.key, v2.revision, v2.status) == ("contract", 2, "draft")
    assert v1.status == "published"
    assert v1.document["nodes"][0]["id"] == "review"
    # Only one draft per key: editing revision 1 again points at the draft.
    with pytest.raises(DefinitionConflict) as caught:
        save_definition(actor=world.admin, definition_id=v1.id, name="合同审批", document=doc)
    assert caught.value.status == 409
    assert caught.value.extra == {"draft_id": str(v2.id)}
    assert caught.value.detail == "Revision 2 of this flow is already a draft; edit that draft."
    v2 = publish_definition(actor=world.admin, definition_id=v2.id)
    v1.refresh_from_db()
    assert (v1.status, v2.status) == ("superseded", "published")
    with pytest.raises(DefinitionConflict):
        publish_definition(actor=world.admin, definition_id=v1.id)
    assert m.events() == [
        "approvals.definition_saved",
        "approvals.definition_saved",
        "approvals.definition_published",
        "approvals.definition_saved",
        "approvals.definition_published",
    ]
    assert m.audit() == m.events()


def test_a_stale_edit_is_refused(world):
    doc = flow(approval("review", "role"))
    draft = save_definition(actor=world.admin, name="合同审批", document=doc)
    save_definition(actor=world.admin, definition_id=draft.id, name="改名", document=doc, expected_version=1)
    with pytest.raises(DefinitionConflict):
        save_definition(actor=world.admin, definition_id=draft.id, name="再改", document=doc, expected_version=1)
    with pytest.raises(DefinitionConflict):
        publish_definition(actor=world.admin, definition_id=draft.id, expected_version=1)
    draft.refresh_from_db()
    assert (draft.name, draft.version) == ("改名", 2)


def test_keys_made_from_names_are_unique_and_chosen_keys_are_checked(world):
    doc = flow(approval("review", "role"))
    first = save_definition(actor=world.admin, name="大额合同审批", document=doc)
    second = save_definition(actor=world.admin, name="小额合同审批", document=doc)
    third = save_definition(actor=world.admin, name="Big contracts", document=doc)
    fourth = save_definition(actor=world.admin, name="Big contracts", document=doc)
    assert (first.key, second.key, third.key, fourth.key) == ("flow", "flow-2", "big-contracts", "big-contracts-2")
    with pytest.raises(DefinitionInvalid) as caught:
        save_definition(actor=world.admin, name="x", key="simple", document=doc)
    assert caught.value.errors == [{"field": "key", "message": "The key simple is taken."}]


def test_only_administrators_change_flows(world):
    doc = flow(approval("review", "role"))
    for actor in (world.pm, world.auditor, world.approver):
        with pytest.raises(ApprovalPermissionDenied):
            save_definition(actor=actor, name="x", document=doc)
    draft = save_definition(actor=world.admin, name="x", document=doc)
    with pytest.raises(ApprovalPermissionDenied):
        publish_definition(actor=world.pm, definition_id=draft.id)


# --- which flow applies ----------------------------------------------------------------------------------


def test_the_first_matching_flow_by_priority_applies_else_the_default(world):
    big = publish(
        world,
        flow(approval("board", "role")),
        key="big",
        is_default=False,
        priority=1,
        applies_when=condition([rule("amount", "gte", "5000000")]),
    )
    design = publish(
        world,
        flow(approval("design", "role")),
        key="design",
        is_default=False,
        priority=2,
        applies_when=condition([rule("kind", "eq", "construction")]),
    )
    facts = get_adapter("orders.order").load(world.order(OrderState.QUOTING, amount="6000000").id).facts
    assert select_definition("orders.order", facts) == (big, "contract amount ≥ 5,000,000")
    facts["amount"] = 1
    assert select_definition("orders.order", facts) == (design, "type = Construction")
    facts["kind"] = "design"
    chosen, why = select_definition("orders.order", facts)
    assert (chosen.key, why) == ("simple", "default flow")
    order, inst = submit(world, amount="7000000.00")
    assert inst.definition == big


def test_without_any_published_flow_submission_is_refused(world):
    ApprovalDefinition.objects.update(status="superseded")
    order = world.order(OrderState.QUOTING)
    with pytest.raises(NoApplicableFlow) as caught:
        orders.transition_order(actor=world.pm, order_id=order.id, name="submit")
    assert (caught.value.status, caught.value.code) == (409, "approval.no_flow")
    order.refresh_from_db()
    assert order.state == OrderState.QUOTING
    assert instance_of(order) is None
