"""BPMN 2.0 interchange: documents survive export and import unchanged, files drawn in a modeler
read as the documents they show, and hostile or unsupported files are refused naming the element."""

from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest
from django.utils import translation

from eoms.approvals.bpmn import (
    MAX_BYTES,
    BpmnInvalid,
    export_bpmn,
    format_condition,
    import_bpmn,
    parse_condition,
)
from eoms.approvals.definition import parse_document
from eoms.core.errors import ValidationFailed

SAMPLES = Path(__file__).parent / "bpmn"
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
BPMNDI = "{http://www.omg.org/spec/BPMN/20100524/DI}"
DC = "{http://www.omg.org/spec/DD/20100524/DC}"
DI = "{http://www.omg.org/spec/DD/20100524/DI}"
CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"
SUPPORTED = "startEvent, endEvent, userTask, sendTask, exclusiveGateway, parallelGateway, sequenceFlow"
DTD_REFUSED = "The file declares a DTD or entities; they are refused."

U1 = "0190f7c2-5a1e-7cc3-9d52-3f6e8b1a2c01"
U2 = "0190f7c2-5a1e-7cc3-9d52-3f6e8b1a2c02"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def rule(field, operator, value):
    return {"field": field, "operator": operator, "value": value}


def approval(node_id, **settings):
    settings.setdefault("approvers", {"source": "role", "role": "dept_head"})
    return {"type": "approval", "id": node_id, "name": settings.pop("name", f"Approve {node_id}"), **settings}


# Every approver source, every mode (quorum by count, by percent and of one), every setting off its
# default, a CC node, a branch with OR groups, in / not_in / contains and awkward strings, a parallel
# block holding a nested branch, and an empty default branch.
FULL = {
    "on_reject": "quoting",
    "nodes": [
        approval(
            "named",
            name="Named users",
            approvers={"source": "users", "users": [U1, U2]},
            sla_hours="48",
            remind_after_hours="1.5",
            on_timeout="escalate",
            editable_fields=["amount", "remark"],
            comment_required_on_reject=False,
            allow_self_approval=True,
        ),
        approval("by_role", mode="all"),
        approval("pm", approvers={"source": "project_role", "project_role": "pm"}, mode="sequence", if_empty="admins"),
        approval(
            "managers",
            approvers={"source": "manager", "levels": 3, "chain": True},
            mode="quorum",
            quorum={"count": 2},
            if_empty="approve",
        ),
        approval("picked", approvers={"source": "picked"}, mode="quorum", quorum={"percent": 60}),
        approval(
            "holder",
            approvers={"source": "field", "field": "project_manager"},
            mode="quorum",
            quorum={"count": 1},
            if_empty="admins",
        ),
        {"type": "cc", "id": "inform", "name": "Inform the team", "recipients": {"source": "users", "users": [U1]}},
        {
            "type": "branch",
            "id": "route",
            "name": "Route by amount",
            "branches": [
                {
                    "id": "big",
                    "name": "Large construction",
                    "when": {
                        "any_of": [
                            [rule("amount", "gte", "500000"), rule("kind", "eq", "construction")],
                            [rule("region", "in", ["east", "north"])],
                        ]
                    },
                    "nodes": [
                        {
                            "type": "parallel",
                            "id": "par",
                            "name": "Finance and legal",
                            "branches": [
                                {
                                    "id": "p_fin",
                                    "name": "Finance",
                                    "nodes": [
                                        approval("fin", approvers={"source": "role", "role": "finance"}),
                                        {
                                            "type": "branch",
                                            "id": "inner",
                                            "name": "Title check",
                                            "branches": [
                                                {
                                                    "id": "tower",
                                                    "name": "Tower",
                                                    "when": {
                                                        "any_of": [[rule("title", "contains", 'Tower "A" & <B> \\C')]]
                                                    },
                                                    "nodes": [
                                                        approval("legal", approvers={"source": "role", "role": "legal"})
                                                    ],
                                                },
                                                {"id": "no_tower", "name": "No tower", "default": True},
                                            ],
                                        },
                                    ],
                                },
                                {
                                    "id": "p_cc",
                                    "name": "Audit",
                                    "nodes": [
                                        approval("audit", approvers={"source": "role", "role": "auditor"}),
                                        {
                                            "type": "cc",
                                            "id": "cc_audit",
                                            "name": "Tell the auditors",
                                            "recipients": {"source": "role", "role": "auditor"},
                                        },
                                    ],
                                },
                            ],
                        }
                    ],
                },
                {
                    "id": "mid",
                    "name": "Not a repair",
                    "when": {
                        "any_of": [
                            [rule("kind", "not_in", ["repair", "survey"])],
                            [rule("amount", "lt", "-1.5"), rule("code", "eq", "007"), rule("region", "ne", "西区")],
                        ]
                    },
                    "nodes": [approval("eng", approvers={"source": "users", "users": [U2]}, mode="all")],
                },
                {"id": "rest", "name": "Otherwise", "default": True},
            ],
        },
        {
            "type": "cc",
            "id": "cc_pm",
            "name": "Tell the PM",
            "recipients": {"source": "project_role", "project_role": "pm"},
        },
    ],
}

# Documents that validate_document would refuse still export and come back unchanged, so a draft
# can leave and return: a quorum without its size, a quorum in "any" mode, a user id with a comma,
# a role with a comma, an expression-looking user id, a parallel join with no branches after it.
DRAFT = {
    "nodes": [
        approval("no_size", mode="quorum"),
        approval("stray_quorum", mode="any", quorum={"count": 2, "percent": 50}),
        approval("odd_users", approvers={"source": "users", "users": ["a,b", "${x}"]}),
        approval("odd_role", approvers={"source": "role", "role": "a,b"}),
        approval("no_users", approvers={"source": "users"}),
        approval("junk", approvers={"source": "manager", "role": "left over", "users": [U1]}),
        {
            "type": "parallel",
            "id": "empty_par",
            "name": "Nothing in parallel",
            "branches": [{"id": "e1", "name": "One"}, {"id": "e2", "name": "Two"}],
        },
        {
            "type": "branch",
            "id": "all_true",
            "name": "Always",
            "branches": [
                {"id": "t", "name": "True", "when": {"any_of": [[], [rule("x", "eq", ["1", "2"])]]}},
                {
                    "id": "f",
                    "name": "Default",
                    "default": True,
                    "nodes": [approval("percent_5", mode="quorum", quorum={"percent": 5})],
                },
            ],
        },
        approval("percent_100", mode="quorum", quorum={"percent": 100}),
    ]
}


@pytest.mark.parametrize(
    "data",
    [FULL, DRAFT, {"nodes": []}, {"nodes": [approval("only")]}],
    ids=["full", "draft", "empty", "single"],
)
def test_export_then_import_gives_the_same_document(data):
    doc = parse_document(data)
    back, meta = import_bpmn(export_bpmn(doc, key="order_approval", name="订单审批"))
    assert back == doc
    assert back.model_dump() == doc.model_dump()
    assert meta == {"key": "order_approval", "name": "订单审批"}


def test_a_key_that_is_no_xml_id_or_is_a_node_id_survives_in_eoms_key():
    doc = parse_document({"nodes": [approval("order_approval")]})
    for key in ("order_approval", "order approval/v2", "2026-orders"):
        data = export_bpmn(doc, key=key, name="")
        back, meta = import_bpmn(data)
        assert back == doc
        assert meta == {"key": key, "name": key}
    process = SafeET.fromstring(export_bpmn(doc, key="order approval/v2", name="x")).find(f"{BPMN}process")
    assert process.get("id") == "order_approval_v2"
    assert properties(process) == [("eoms:on_reject", "rejected"), ("eoms:key", "order approval/v2")]
    process = SafeET.fromstring(export_bpmn(doc, key="order_approval", name="x")).find(f"{BPMN}process")
    assert process.get("id") == "order_approval.2"


def test_export_is_deterministic():
    doc = parse_document(FULL)
    assert export_bpmn(doc, key="k", name="n") == export_bpmn(parse_document(FULL), key="k", name="n")


def properties(element):
    return [
        (p.get("name"), p.get("value"))
        for p in element.findall(f"{BPMN}extensionElements/{CAMUNDA}properties/{CAMUNDA}property")
    ]


def loop_of(task):
    loop = task.find(f"{BPMN}multiInstanceLoopCharacteristics")
    if loop is None:
        return None
    condition = loop.find(f"{BPMN}completionCondition")
    return loop.get("isSequential"), None if condition is None else condition.text


def test_export_maps_nodes_to_bpmn_elements():
    data = export_bpmn(parse_document(FULL), key="order_approval", name="Order approval")
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn=')
    root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    assert root.tag == f"{BPMN}definitions"
    assert b'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"' in data
    process = root.find(f"{BPMN}process")
    assert (process.get("id"), process.get("name"), process.get("isExecutable")) == (
        "order_approval",
        "Order approval",
        "true",
    )
    assert properties(process) == [("eoms:on_reject", "quoting")]
    by_id = {e.get("id"): e for e in process}
    kinds = [(e.tag.removeprefix(BPMN), e.get("id")) for e in process if e.tag != f"{BPMN}sequenceFlow"]
    assert kinds == [
        ("extensionElements", None),
        ("startEvent", "eoms.start"),
        ("userTask", "named"),
        ("userTask", "by_role"),
        ("userTask", "pm"),
        ("userTask", "managers"),
        ("userTask", "picked"),
        ("userTask", "holder"),
        ("sendTask", "inform"),
        ("exclusiveGateway", "route"),
        ("parallelGateway", "par"),
        ("userTask", "fin"),
        ("exclusiveGateway", "inner"),
        ("userTask", "legal"),
        ("exclusiveGateway", "inner.join"),
        ("userTask", "audit"),
        ("sendTask", "cc_audit"),
        ("parallelGateway", "par.join"),
        ("userTask", "eng"),
        ("exclusiveGateway", "route.join"),
        ("sendTask", "cc_pm"),
        ("endEvent", "eoms.end"),
    ]

    named = by_id["named"]
    assert named.get("name") == "Named users"
    assert named.get(f"{CAMUNDA}candidateUsers") == f"{U1},{U2}"
    assert properties(named) == [
        ("eoms:sla_hours", "48"),
        ("eoms:remind_after_hours", "1.5"),
        ("eoms:on_timeout", "escalate"),
        ("eoms:editable_fields", '["amount", "remark"]'),
        ("eoms:comment_required_on_reject", "false"),
        ("eoms:allow_self_approval", "true"),
    ]
    assert loop_of(named) == (None, "${nrOfCompletedInstances >= 1}")
    assert by_id["by_role"].get(f"{CAMUNDA}candidateGroups") == "dept_head"
    assert properties(by_id["by_role"]) == []
    assert loop_of(by_id["by_role"]) == (None, None)
    assert properties(by_id["pm"]) == [
        ("eoms:approvers", "project_role"),
        ("eoms:approvers.project_role", "pm"),
        ("eoms:if_empty", "admins"),
    ]
    assert loop_of(by_id["pm"]) == ("true", None)
    assert properties(by_id["managers"]) == [
        ("eoms:approvers", "manager"),
        ("eoms:approvers.levels", "3"),
        ("eoms:approvers.chain", "true"),
        ("eoms:if_empty", "approve"),
    ]
    assert loop_of(by_id["managers"]) == (None, "${nrOfCompletedInstances >= 2}")
    assert properties(by_id["picked"]) == [("eoms:approvers", "picked")]
    assert loop_of(by_id["picked"]) == (None, "${nrOfCompletedInstances / nrOfInstances >= 0.6}")
    # A quorum of one reads as "any" from the loop alone; the properties settle it.
    assert properties(by_id["holder"]) == [
        ("eoms:approvers", "field"),
        ("eoms:approvers.field", "project_manager"),
        ("eoms:mode", "quorum"),
        ("eoms:quorum.count", "1"),
        ("eoms:if_empty", "admins"),
    ]
    assert loop_of(by_id["holder"]) == (None, "${nrOfCompletedInstances >= 1}")
    assert properties(by_id["inform"]) == [("eoms:recipients", "users"), ("eoms:recipients.users", f'["{U1}"]')]
    assert properties(by_id["cc_audit"]) == [("eoms:recipients", "role"), ("eoms:recipients.role", "auditor")]

    assert by_id["route"].get("name") == "Route by amount"
    assert by_id["route"].get("default") == "rest"
    assert by_id["inner"].get("default") == "no_tower"
    assert by_id["par"].get("default") is None
    flows = {f.get("id"): f for f in process.findall(f"{BPMN}sequenceFlow")}
    big = flows["big"]
    assert (big.get("name"), big.get("sourceRef"), big.get("targetRef")) == ("Large construction", "route", "par")
    expression = big.find(f"{BPMN}conditionExpression")
    assert expression.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "bpmn:tFormalExpression"
    assert expression.text == '${amount >= 500000 && kind == "construction" || region in ["east","north"]}'
    assert flows["mid"].find(f"{BPMN}conditionExpression").text == (
        '${kind not in ["repair","survey"] || amount < -1.5 && code == "007" && region != "西区"}'
    )
    assert flows["tower"].find(f"{BPMN}conditionExpression").text == '${title contains "Tower \\"A\\" & <B> \\\\C"}'
    # The empty default branch runs straight from the split to the join, without a condition.
    rest = flows["rest"]
    assert (rest.get("name"), rest.get("sourceRef"), rest.get("targetRef")) == ("Otherwise", "route", "route.join")
    assert rest.find(f"{BPMN}conditionExpression") is None
    assert (flows["p_fin"].get("sourceRef"), flows["p_fin"].get("targetRef")) == ("par", "fin")
    assert flows["p_fin"].find(f"{BPMN}conditionExpression") is None
    assert b"&amp;&amp;" in data and b"&gt;=" in data


@pytest.mark.parametrize("data", [FULL, DRAFT, {"nodes": []}], ids=["full", "draft", "empty"])
def test_export_is_well_formed_and_every_reference_resolves(data):
    root = SafeET.fromstring(export_bpmn(parse_document(data), key="k", name="n"), forbid_dtd=True)
    all_ids = [e.get("id") for e in root.iter() if e.get("id") is not None]
    assert len(all_ids) == len(set(all_ids))
    process = root.find(f"{BPMN}process")
    nodes = {e.get("id"): e for e in process if e.tag not in (f"{BPMN}sequenceFlow", f"{BPMN}extensionElements")}
    flows = {f.get("id"): f for f in process.findall(f"{BPMN}sequenceFlow")}
    for flow_id, flow in flows.items():
        assert flow.get("sourceRef") in nodes, flow_id
        assert flow.get("targetRef") in nodes, flow_id
    for node_id, node in nodes.items():
        incoming = [i.text for i in node.findall(f"{BPMN}incoming")]
        outgoing = [o.text for o in node.findall(f"{BPMN}outgoing")]
        assert incoming == [f for f, flow in flows.items() if flow.get("targetRef") == node_id]
        assert outgoing == [f for f, flow in flows.items() if flow.get("sourceRef") == node_id]
        if node.get("default"):
            assert node.get("default") in outgoing
    plane = root.find(f"{BPMNDI}BPMNDiagram/{BPMNDI}BPMNPlane")
    assert plane.get("bpmnElement") == process.get("id")
    shapes = {s.get("bpmnElement"): s for s in plane.findall(f"{BPMNDI}BPMNShape")}
    edges = {e.get("bpmnElement"): e for e in plane.findall(f"{BPMNDI}BPMNEdge")}
    assert set(shapes) == set(nodes)
    assert set(edges) == set(flows)
    for shape in shapes.values():
        bounds = shape.find(f"{DC}Bounds")
        assert int(bounds.get("width")) > 0 and int(bounds.get("height")) > 0
    for flow_id, edge in edges.items():
        points = [(int(p.get("x")), int(p.get("y"))) for p in edge.findall(f"{DI}waypoint")]
        assert len(points) >= 2, flow_id
        # Left to right: no edge ends left of where it starts.
        assert points[-1][0] >= points[0][0], flow_id
        # Orthogonal segments only.
        assert all(a[0] == b[0] or a[1] == b[1] for a, b in zip(points, points[1:], strict=False)), flow_id


@pytest.mark.parametrize("data", [FULL, DRAFT], ids=["full", "draft"])
def test_export_validates_against_the_bpmn_20_schema(data):
    # SpiffWorkflow ships the OMG BPMN 2.0 XSDs; an independent check that modelers will take the file.
    parser = pytest.importorskip("SpiffWorkflow.bpmn.parser.BpmnParser")
    etree = pytest.importorskip("lxml.etree")
    schema = parser.BpmnValidator().validator
    assert schema.validate(etree.fromstring(export_bpmn(parse_document(data), key="k", name="n"))), schema.error_log


def test_layout_puts_branches_on_their_own_rows():
    root = SafeET.fromstring(export_bpmn(parse_document(FULL), key="k", name="n"))
    bounds = {
        s.get("bpmnElement"): tuple(int(s.find(f"{DC}Bounds").get(a)) for a in ("x", "y", "width", "height"))
        for s in root.iter(f"{BPMNDI}BPMNShape")
    }
    # The row of the whole flow is centred at y 340: "route" stacks its branches (300, 80 and 80
    # high, 30 apart) from y 80 down, in branch order, right of the split.
    assert bounds["eoms.start"] == (150, 322, 36, 36)
    assert bounds["named"] == (236, 300, 100, 80)
    assert bounds["by_role"] == (386, 300, 100, 80)
    assert bounds["route"] == (1286, 315, 50, 50)
    assert bounds["par"] == (1386, 205, 50, 50)
    assert bounds["fin"] == (1486, 135, 100, 80)
    assert bounds["inner"] == (1636, 150, 50, 50)
    assert bounds["legal"] == (1736, 80, 100, 80)
    assert bounds["inner.join"] == (1886, 150, 50, 50)
    assert bounds["audit"] == (1486, 300, 100, 80)
    assert bounds["cc_audit"] == (1636, 300, 100, 80)
    assert bounds["par.join"] == (1986, 205, 50, 50)
    assert bounds["eng"] == (1386, 410, 100, 80)
    assert bounds["route.join"] == (2086, 315, 50, 50)
    assert bounds["cc_pm"] == (2186, 300, 100, 80)
    assert bounds["eoms.end"] == (2336, 322, 36, 36)
    edges = {
        e.get("bpmnElement"): [(int(p.get("x")), int(p.get("y"))) for p in e.findall(f"{DI}waypoint")]
        for e in root.iter(f"{BPMNDI}BPMNEdge")
    }
    # The empty default branch drops to its row (centre 560) and climbs back into the join.
    assert edges["rest"] == [(1311, 365), (1311, 560), (2111, 560), (2111, 365)]
    assert edges["mid"] == [(1311, 365), (1311, 450), (1386, 450)]
    assert edges["big"] == [(1311, 315), (1311, 230), (1386, 230)]


# --- conditions -------------------------------------------------------------------------------


def test_format_condition_writes_juel():
    condition = parse_document(FULL).nodes[7].branches[0].when
    assert format_condition(condition) == (
        '${amount >= 500000 && kind == "construction" || region in ["east","north"]}'
    )


@pytest.mark.parametrize(
    "text, groups",
    [
        (
            '${amount >= 500000 && kind == "construction" || region == "east"}',
            [[rule("amount", "gte", "500000"), rule("kind", "eq", "construction")], [rule("region", "eq", "east")]],
        ),
        (
            "#{(amount ge 100 and kind eq 'x') or 500 < amount}",
            [[rule("amount", "gte", "100"), rule("kind", "eq", "x")], [rule("amount", "gt", "500")]],
        ),
        (
            "${a == 1 && (b != 2 || c <= 3)}",
            [[rule("a", "eq", "1"), rule("b", "ne", "2")], [rule("a", "eq", "1"), rule("c", "lte", "3")]],
        ),
        ("${ true }", [[]]),
        (
            "${kind not in [\"a\", 'b', 3] && kind in []}",
            [[rule("kind", "not_in", ["a", "b", "3"]), rule("kind", "in", [])]],
        ),
        ('${title contains "say \\"hi\\" \\\\ now"}', [[rule("title", "contains", 'say "hi" \\ now')]]),
        ("${order.amount > -0.5 && flag == true}", [[rule("order.amount", "gt", "-0.5"), rule("flag", "eq", "true")]]),
    ],
)
def test_parse_condition(text, groups):
    assert parse_condition(text).model_dump()["any_of"] == groups


@pytest.mark.parametrize(
    "text, reason",
    [
        ("amount > 5", "write it as ${…}"),
        ("${amount >}", "it ends too early"),
        ("${amount >== 5}", "unexpected “=”"),
        ("${!approved}", "unexpected “!approved”"),
        ("${amount > 5 5}", "unexpected “5”"),
        ("${(a == 1}", "it ends too early"),
        ("${a like 1}", "unexpected “like”"),
        ("${" + " || ".join(f"a == {i}" for i in range(65)) + "}", "it expands to more than 64 OR groups"),
    ],
)
def test_parse_condition_says_what_is_wrong(text, reason):
    with pytest.raises(ValueError) as caught:
        parse_condition(text)
    assert str(caught.value) == reason


# --- files drawn in a modeler -----------------------------------------------------------------


def sample(name):
    return import_bpmn((SAMPLES / name).read_bytes())


def test_import_a_three_step_sequence_drawn_in_camunda_modeler():
    doc, meta = sample("sequential_three.bpmn")
    assert meta == {"key": "Process_purchase", "name": "采购订单三级审批"}
    assert doc == parse_document(
        {
            "nodes": [
                approval("Activity_0dept01", name="部门经理审批"),
                approval(
                    "Activity_1fin002",
                    name="财务审批",
                    approvers={"source": "users", "users": ["0190f7c2-5a1e-7cc3-9d52-3f6e8b1a2c4d"]},
                ),
                approval(
                    "Activity_2gm0003",
                    name="总经理审批",
                    approvers={
                        "source": "users",
                        "users": ["0190f7c2-aaaa-7000-8000-000000000001", "0190f7c2-aaaa-7000-8000-000000000002"],
                    },
                ),
            ]
        }
    )


def test_import_an_amount_threshold_gateway_with_a_default_flow():
    doc, meta = sample("amount_threshold.bpmn")
    assert meta == {"key": "Process_amount", "name": "Amount thresholds"}
    assert doc == parse_document(
        {
            "nodes": [
                approval("Activity_dept", name="Department head"),
                {
                    "type": "branch",
                    "id": "Gateway_amount",
                    "name": "Amount?",
                    "branches": [
                        {
                            "id": "Flow_big",
                            "name": "≥ 500,000",
                            "when": {"any_of": [[rule("amount", "gte", "500000")]]},
                            "nodes": [
                                approval(
                                    "Activity_gm",
                                    name="General manager",
                                    approvers={"source": "role", "role": "general_manager"},
                                )
                            ],
                        },
                        {
                            "id": "Flow_mid",
                            "name": "Construction over 100,000",
                            "when": {
                                "any_of": [
                                    [rule("amount", "gte", "100000"), rule("kind", "eq", "construction")],
                                    [rule("region", "eq", "east")],
                                ]
                            },
                            "nodes": [
                                approval(
                                    "Activity_eng",
                                    name="Chief engineer",
                                    approvers={"source": "users", "users": ["0190f7c2-eeee-7000-8000-000000000007"]},
                                )
                            ],
                        },
                        # Unnamed in the modeler: the flow's id names it.
                        {"id": "Flow_small", "name": "Flow_small", "default": True},
                    ],
                },
            ]
        }
    )


def test_import_a_parallel_fork_and_join():
    doc, meta = sample("parallel_review.bpmn")
    assert meta == {"key": "Process_parallel", "name": "并行评审"}
    assert doc == parse_document(
        {
            "nodes": [
                {
                    "type": "parallel",
                    "id": "Gateway_fork",
                    "name": "同时评审",
                    "branches": [
                        {
                            "id": "Flow_to_fin",
                            "name": "Flow_to_fin",
                            "nodes": [
                                approval(
                                    "Activity_fin", name="财务评审", approvers={"source": "role", "role": "finance"}
                                )
                            ],
                        },
                        {
                            "id": "Flow_to_legal",
                            "name": "法务",
                            "nodes": [
                                approval(
                                    "Activity_legal", name="法务评审", approvers={"source": "role", "role": "legal"}
                                )
                            ],
                        },
                    ],
                },
                approval("Activity_gm", name="总经理审批", approvers={"source": "role", "role": "general_manager"}),
            ]
        }
    )


def test_import_multi_instance_countersign_modes():
    doc, meta = sample("countersign.bpmn")
    assert meta == {"key": "Process_countersign", "name": "会签"}
    assert doc == parse_document(
        {
            "nodes": [
                # assignee="${approver}" only hands out the loop's instances; candidateUsers names them.
                approval(
                    "Activity_committee",
                    name="评审委员会会签 (60%)",
                    approvers={"source": "users", "users": ["u-li", "u-wang", "u-zhao", "u-qian", "u-sun"]},
                    mode="quorum",
                    quorum={"percent": 60},
                ),
                approval(
                    "Activity_board", name="董事会全体会签", approvers={"source": "role", "role": "board"}, mode="all"
                ),
                approval(
                    "Activity_two",
                    name="任意两人同意",
                    approvers={"source": "users", "users": ["u-a", "u-b", "u-c"]},
                    mode="quorum",
                    quorum={"count": 2},
                ),
                approval(
                    "Activity_chain",
                    name="依次审批",
                    approvers={"source": "users", "users": ["u-x", "u-y"]},
                    mode="sequence",
                ),
            ]
        }
    )


def test_import_branches_that_meet_at_the_next_task_without_a_converging_gateway():
    doc, meta = sample("omitted_join.bpmn")
    assert meta == {"key": "Process_region", "name": "Process_region"}
    assert doc == parse_document(
        {
            "nodes": [
                {
                    "type": "branch",
                    "id": "Gateway_region",
                    "name": "Region?",
                    "branches": [
                        {
                            "id": "Flow_east",
                            "name": "East China",
                            "when": {"any_of": [[rule("region", "in", ["east", "shanghai"])]]},
                            "nodes": [
                                approval(
                                    "Activity_east",
                                    name="Regional director",
                                    approvers={"source": "role", "role": "regional_director"},
                                )
                            ],
                        },
                        {"id": "Flow_other", "name": "Elsewhere", "default": True},
                    ],
                },
                approval("Activity_final", name="Final review", approvers={"source": "role", "role": "reviewer"}),
            ]
        }
    )


# --- hand-built processes ---------------------------------------------------------------------

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:flowable="http://flowable.org/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="Defs" targetNamespace="http://bpmn.io/schema/bpmn">'
)


def bpmn(*parts, process='id="P" name="Test"'):
    return f"{HEAD}<bpmn:process {process}>{''.join(parts)}</bpmn:process></bpmn:definitions>".encode()


def start(element_id="S"):
    return f'<bpmn:startEvent id="{element_id}"/>'


def end(element_id="E"):
    return f'<bpmn:endEvent id="{element_id}"/>'


def task(element_id, attrs='camunda:candidateGroups="r"', inner="", tag="userTask"):
    return f'<bpmn:{tag} id="{element_id}" {attrs}>{inner}</bpmn:{tag}>'


def gateway(element_id, kind="exclusiveGateway", default=None, name=None):
    extra = (f' default="{default}"' if default else "") + (f' name="{name}"' if name else "")
    return f'<bpmn:{kind} id="{element_id}"{extra}/>'


def flow(flow_id, source, target, condition=None, name=None):
    named = f' name="{name}"' if name else ""
    body = (
        f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}</bpmn:conditionExpression>'
        if condition
        else ""
    )
    return (
        f'<bpmn:sequenceFlow id="{flow_id}"{named} sourceRef="{source}" targetRef="{target}">{body}</bpmn:sequenceFlow>'
    )


def props(**values):
    rows = "".join(f'<camunda:property name="eoms:{k}" value="{v}"/>' for k, v in values.items())
    return f"<bpmn:extensionElements><camunda:properties>{rows}</camunda:properties></bpmn:extensionElements>"


def linear(*middle, first="S", last="E"):
    """start -> middle... -> end, flows f0, f1, ..."""
    chain = [first, *middle, last]
    return [flow(f"f{i}", a, b) for i, (a, b) in enumerate(zip(chain, chain[1:], strict=False))]


def refused(data) -> list[str]:
    with pytest.raises(BpmnInvalid) as caught:
        import_bpmn(data)
    error = caught.value
    assert isinstance(error, ValidationFailed)
    assert error.code == "approval.bpmn_invalid"
    assert error.status == 422
    assert all(e["field"] == "file" for e in error.errors)
    return [e["message"] for e in error.errors]


def test_a_minimal_process_imports():
    doc, meta = import_bpmn(bpmn(start(), task("A"), end(), *linear("A"), process='id="P"'))
    assert meta == {"key": "P", "name": "P"}
    assert doc == parse_document({"nodes": [approval("A", name="A", approvers={"source": "role", "role": "r"})]})


def test_modeler_ids_the_document_refuses_are_cleaned_and_kept_unique():
    doc, _meta = import_bpmn(
        bpmn(
            start(),
            task("Task_1", 'name="Kept" camunda:assignee="u1"'),
            task("Task.1", 'camunda:assignee="u2"'),
            task("_task", 'camunda:assignee="u3"'),
            task("审批1", 'camunda:assignee="u4"'),
            task("A" * 50, 'camunda:assignee="u5"'),
            end(),
            *linear("Task_1", "Task.1", "_task", "审批1", "A" * 50),
        )
    )
    assert [(n.id, n.name, n.approvers.users) for n in doc.nodes] == [
        ("Task_1", "Kept", ["u1"]),
        ("Task_1_2", "Task.1", ["u2"]),
        ("n_task", "_task", ["u3"]),
        ("n_1", "审批1", ["u4"]),
        ("A" * 40, "A" * 50, ["u5"]),
    ]


def test_assignment_attributes_and_properties_of_a_hand_drawn_task():
    doc, _meta = import_bpmn(
        bpmn(
            start(),
            task("A", 'flowable:candidateGroups="finance"'),
            task("B", 'camunda:candidateUsers=" u1 , u2,, "'),
            task("C", 'camunda:assignee="${initiator}"', inner=props(approvers="picked")),
            task(
                "D",
                "",
                inner=props(**{"approvers": "manager", "approvers.levels": "2", "editable_fields": "amount, remark"}),
            ),
            task("CC", "", tag="sendTask", inner=props(**{"recipients": "role", "recipients.role": "auditor"})),
            task("CC2", 'camunda:candidateUsers="u9"', tag="sendTask"),
            end(),
            *linear("A", "B", "C", "D", "CC", "CC2"),
        )
    )
    assert doc == parse_document(
        {
            "nodes": [
                approval("A", name="A", approvers={"source": "role", "role": "finance"}),
                approval("B", name="B", approvers={"source": "users", "users": ["u1", "u2"]}),
                approval("C", name="C", approvers={"source": "picked"}),
                approval(
                    "D", name="D", approvers={"source": "manager", "levels": 2}, editable_fields=["amount", "remark"]
                ),
                {"type": "cc", "id": "CC", "name": "CC", "recipients": {"source": "role", "role": "auditor"}},
                {"type": "cc", "id": "CC2", "name": "CC2", "recipients": {"source": "users", "users": ["u9"]}},
            ]
        }
    )


def test_several_end_events_close_the_branches_that_reach_them():
    doc, _meta = import_bpmn(
        bpmn(
            start(),
            gateway("G", default="small"),
            task("Big"),
            gateway("F", kind="parallelGateway"),
            task("X"),
            task("Y"),
            end("E1"),
            end("E2"),
            end("E3"),
            flow("f0", "S", "G"),
            flow("big", "G", "Big", "${amount > 100}"),
            flow("f1", "Big", "F"),
            flow("fx", "F", "X"),
            flow("fy", "F", "Y"),
            flow("f2", "X", "E1"),
            flow("f3", "Y", "E2"),
            flow("small", "G", "E3"),
        )
    )
    assert doc == parse_document(
        {
            "nodes": [
                {
                    "type": "branch",
                    "id": "G",
                    "name": "G",
                    "branches": [
                        {
                            "id": "big",
                            "name": "big",
                            "when": {"any_of": [[rule("amount", "gt", "100")]]},
                            "nodes": [
                                approval("Big", name="Big", approvers={"source": "role", "role": "r"}),
                                {
                                    "type": "parallel",
                                    "id": "F",
                                    "name": "F",
                                    "branches": [
                                        {
                                            "id": "fx",
                                            "name": "fx",
                                            "nodes": [
                                                approval("X", name="X", approvers={"source": "role", "role": "r"})
                                            ],
                                        },
                                        {
                                            "id": "fy",
                                            "name": "fy",
                                            "nodes": [
                                                approval("Y", name="Y", approvers={"source": "role", "role": "r"})
                                            ],
                                        },
                                    ],
                                },
                            ],
                        },
                        {"id": "small", "name": "small", "default": True},
                    ],
                }
            ]
        }
    )


def test_nested_gateways_may_share_one_join():
    doc, _meta = import_bpmn(
        bpmn(
            start(),
            gateway("G0", default="d"),
            gateway("G1", default="c"),
            task("B"),
            task("C"),
            task("D"),
            gateway("J"),
            end(),
            flow("f0", "S", "G0"),
            flow("g1", "G0", "G1", "${a == 1}"),
            flow("b", "G1", "B", "${b == 1}"),
            flow("c", "G1", "C"),
            flow("d", "G0", "D"),
            flow("f1", "B", "J"),
            flow("f2", "C", "J"),
            flow("f3", "D", "J"),
            flow("f4", "J", "E"),
        )
    )
    role = {"source": "role", "role": "r"}
    assert doc == parse_document(
        {
            "nodes": [
                {
                    "type": "branch",
                    "id": "G0",
                    "name": "G0",
                    "branches": [
                        {
                            "id": "g1",
                            "name": "g1",
                            "when": {"any_of": [[rule("a", "eq", "1")]]},
                            "nodes": [
                                {
                                    "type": "branch",
                                    "id": "G1",
                                    "name": "G1",
                                    "branches": [
                                        {
                                            "id": "b",
                                            "name": "b",
                                            "when": {"any_of": [[rule("b", "eq", "1")]]},
                                            "nodes": [approval("B", name="B", approvers=role)],
                                        },
                                        {
                                            "id": "c",
                                            "name": "c",
                                            "default": True,
                                            "nodes": [approval("C", name="C", approvers=role)],
                                        },
                                    ],
                                }
                            ],
                        },
                        {"id": "d", "name": "d", "default": True, "nodes": [approval("D", name="D", approvers=role)]},
                    ],
                }
            ]
        }
    )


def test_a_pool_around_the_process_is_fine():
    data = bpmn(start(), task("A"), end(), *linear("A")).replace(
        b"<bpmn:process",
        b'<bpmn:collaboration id="Collab"><bpmn:participant id="Pool" name="Company" processRef="P"/>'
        b"</bpmn:collaboration><bpmn:process",
    )
    doc, meta = import_bpmn(data)
    assert [n.id for n in doc.nodes] == ["A"]
    assert meta == {"key": "P", "name": "Test"}


# --- refused files ----------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <bpmn:process id="P" name="&lol9;"/>
</bpmn:definitions>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <bpmn:process id="P" name="&xxe;"><bpmn:startEvent id="S"/></bpmn:process>
</bpmn:definitions>
"""

PLAIN_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE definitions SYSTEM "http://example.com/bpmn.dtd">
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"><bpmn:process id="P"/></bpmn:definitions>
"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY, PLAIN_DTD], ids=["billion-laughs", "xxe", "dtd"])
def test_dtds_and_entities_are_refused_unexpanded(data):
    messages = refused(data)
    assert messages == [DTD_REFUSED]
    assert "lollol" not in " ".join(messages) and "root:" not in " ".join(messages)


def test_a_file_over_two_megabytes_is_refused_before_parsing():
    valid = bpmn(start(), task("A"), end(), *linear("A"))
    padded = valid + b"<!--" + b"x" * (MAX_BYTES - len(valid) - 7) + b"-->"
    assert len(padded) == MAX_BYTES
    assert [n.id for n in import_bpmn(padded)[0].nodes] == ["A"]
    assert refused(padded + b" ") == [
        "The file is larger than 2 MB (2097153 bytes); EOMS imports BPMN files up to 2 MB."
    ]
    # Not even looked at: an oversize DTD bomb gets the size answer, not the DTD one.
    assert refused(BILLION_LAUGHS + b" " * MAX_BYTES)[0].startswith("The file is larger than 2 MB")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"name,amount\nA,1\n", "The file is not XML: syntax error: line 1, column 0."),
        (b"<bpmn:definitions", "The file is not XML: unclosed token: line 1, column 0."),
        (
            b'<definitions xmlns="http://example.com/other"/>',
            "The file is not BPMN 2.0: its root element is {http://example.com/other}definitions, "
            "not bpmn:definitions.",
        ),
        (
            HEAD.encode() + b"</bpmn:definitions>",
            "The file holds no process; EOMS imports one BPMN process.",
        ),
        (
            HEAD.encode() + b'<bpmn:process id="P1"/><bpmn:process id="P2"/></bpmn:definitions>',
            "The file holds 2 processes (P1, P2); EOMS imports one BPMN process.",
        ),
    ],
    ids=["csv", "truncated", "not-bpmn", "no-process", "two-processes"],
)
def test_files_that_are_not_one_bpmn_process(data, message):
    assert refused(data) == [message]


@pytest.mark.parametrize(
    "element, kind",
    [
        ('<bpmn:serviceTask id="Task_3"/>', "serviceTask"),
        ('<bpmn:scriptTask id="Task_3"/>', "scriptTask"),
        ('<bpmn:task id="Task_3"/>', "task"),
        ('<bpmn:subProcess id="Task_3"><bpmn:startEvent id="inner"/></bpmn:subProcess>', "subProcess"),
        ('<bpmn:callActivity id="Task_3"/>', "callActivity"),
        ('<bpmn:inclusiveGateway id="Task_3"/>', "inclusiveGateway"),
        ('<bpmn:eventBasedGateway id="Task_3"/>', "eventBasedGateway"),
        (
            '<bpmn:intermediateCatchEvent id="Task_3"><bpmn:timerEventDefinition/></bpmn:intermediateCatchEvent>',
            "intermediateCatchEvent",
        ),
        ('<bpmn:intermediateThrowEvent id="Task_3"/>', "intermediateThrowEvent"),
        (
            '<bpmn:userTask id="Task_3"><bpmn:standardLoopCharacteristics/></bpmn:userTask>',
            "userTask (standardLoopCharacteristics)",
        ),
        (
            '<bpmn:sendTask id="Task_3"><bpmn:multiInstanceLoopCharacteristics/></bpmn:sendTask>',
            "sendTask (multiInstanceLoopCharacteristics)",
        ),
    ],
)
def test_unsupported_elements_are_named(element, kind):
    data = bpmn(start(), element, end(), *linear("Task_3"))
    assert refused(data) == [f"Unsupported BPMN element {kind} 'Task_3'; supported: {SUPPORTED}."]


def test_every_unsupported_element_is_listed_with_events_that_are_more_than_start_and_end():
    data = bpmn(
        '<bpmn:startEvent id="Timer"><bpmn:timerEventDefinition id="T1"/></bpmn:startEvent>',
        task("A"),
        '<bpmn:boundaryEvent id="Late" attachedToRef="A"><bpmn:timerEventDefinition/></bpmn:boundaryEvent>',
        '<bpmn:endEvent id="Stop"><bpmn:terminateEventDefinition/></bpmn:endEvent>',
        '<bpmn:textAnnotation id="Note"><bpmn:text>why</bpmn:text></bpmn:textAnnotation>',
        *linear("A", first="Timer", last="Stop"),
        flow("late", "Late", "Stop"),
    )
    assert refused(data) == [
        f"Unsupported BPMN element startEvent (timerEventDefinition) 'Timer'; supported: {SUPPORTED}.",
        f"Unsupported BPMN element boundaryEvent 'Late'; supported: {SUPPORTED}.",
        f"Unsupported BPMN element endEvent (terminateEventDefinition) 'Stop'; supported: {SUPPORTED}.",
    ]


def test_ids_must_exist_and_be_unique():
    data = bpmn(
        start(), task("A"), task("A"), '<bpmn:userTask name="x"/>', end(), *linear("A"), flow("f9", "A", "Nowhere")
    )
    assert refused(data) == [
        "userTask 'A': another element has the same id; ids must be unique.",
        "A BPMN element userTask has no id; every element needs one.",
        "sequenceFlow 'f9' connects 'Nowhere', which is not an element of the process.",
    ]


@pytest.mark.parametrize(
    "parts, messages",
    [
        ([task("A"), end(), flow("f", "A", "E")], ["The process 'P' has no start event."]),
        (
            [
                start("S1"),
                start("S2"),
                task("A"),
                end(),
                flow("f1", "S1", "A"),
                flow("f2", "S2", "A"),
                flow("f3", "A", "E"),
            ],
            ["The process 'P' has 2 start events (S1, S2); EOMS flows have one."],
        ),
        ([start(), task("A"), flow("f", "S", "A")], ["The process 'P' has no end event."]),
    ],
    ids=["no-start", "two-starts", "no-end"],
)
def test_one_start_and_an_end(parts, messages):
    assert refused(bpmn(*parts)) == messages


def test_a_loop_back_to_an_earlier_task_is_named():
    data = bpmn(
        start(),
        task("Draft"),
        task("Review"),
        gateway("Ok", default="Back"),
        end(),
        flow("f0", "S", "Draft"),
        flow("f1", "Draft", "Review"),
        flow("f2", "Review", "Ok"),
        flow("Yes", "Ok", "E", "${approved == 1}"),
        flow("Back", "Ok", "Draft"),
    )
    assert refused(data) == [
        "sequenceFlow 'Back' from exclusiveGateway 'Ok' back to userTask 'Draft' makes a loop; "
        "EOMS flows only run forward."
    ]


def test_an_unreachable_task_is_named():
    data = bpmn(start(), task("A"), task("Orphan"), end(), *linear("A"), flow("f9", "Orphan", "E"))
    assert refused(data) == ["userTask 'Orphan' cannot be reached from the start event."]


def test_a_dead_end_is_named():
    data = bpmn(
        start(),
        gateway("G", default="f2"),
        task("A"),
        task("Stuck"),
        end(),
        flow("f0", "S", "G"),
        flow("f1", "G", "A", "${amount > 1}"),
        flow("f2", "G", "Stuck"),
        flow("f3", "A", "E"),
    )
    assert refused(data) == ["userTask 'Stuck' has no way to an end event."]


def decision(*flows, default=None):
    return bpmn(
        start(),
        gateway("G", default=default),
        task("A"),
        task("B"),
        gateway("J"),
        end(),
        flow("f0", "S", "G"),
        *flows,
        flow("fa", "A", "J"),
        flow("fb", "B", "J"),
        flow("fe", "J", "E"),
    )


def test_an_exclusive_gateway_without_default_needs_every_condition():
    data = decision(flow("toA", "G", "A", "${amount > 1}"), flow("toB", "G", "B"))
    assert refused(data) == [
        "exclusiveGateway 'G' has no default flow and its flow 'toB' has no condition; "
        "give every flow a condition or make one the default."
    ]


def test_a_flow_that_is_neither_conditional_nor_the_default_is_named():
    data = bpmn(
        start(),
        gateway("G", default="toC"),
        task("A"),
        task("B"),
        task("C"),
        gateway("J"),
        end(),
        flow("f0", "S", "G"),
        flow("toA", "G", "A", "${amount > 1}"),
        flow("toB", "G", "B"),
        flow("toC", "G", "C"),
        *(flow(f"f{x}", x, "J") for x in "ABC"),
        flow("fe", "J", "E"),
    )
    assert refused(data) == [
        "exclusiveGateway 'G': its flow 'toB' has no condition and is not the default flow; give it a condition."
    ]


def test_without_default_but_with_every_condition_imports_without_a_default_branch():
    doc, _meta = import_bpmn(decision(flow("toA", "G", "A", "${x == 1}"), flow("toB", "G", "B", "${x == 2}")))
    assert [(b.id, b.default, b.when is not None) for b in doc.nodes[0].branches] == [
        ("toA", False, True),
        ("toB", False, True),
    ]


def test_a_default_that_does_not_leave_the_gateway_is_named():
    data = decision(flow("toA", "G", "A", "${x == 1}"), flow("toB", "G", "B", "${x == 2}"), default="fe")
    assert refused(data) == ["exclusiveGateway 'G': its default flow 'fe' does not leave it."]


def test_an_unparsable_condition_is_shown():
    data = decision(flow("toA", "G", "A", "${amount &gt;== 500000}"), flow("toB", "G", "B"), default="toB")
    assert refused(data) == ["sequenceFlow 'toA': the condition ${amount >== 500000} cannot be read (unexpected “=”)."]


def test_a_condition_elsewhere_than_a_decision_is_named():
    data = bpmn(start(), task("A"), end(), flow("f0", "S", "A", "${x == 1}"), flow("f1", "A", "E"))
    assert refused(data) == [
        "sequenceFlow 'f0' has a condition but does not leave a diverging exclusiveGateway; "
        "EOMS tests conditions only there."
    ]


def test_splits_outside_gateways_and_gateways_that_join_and_split_are_named():
    data = bpmn(
        start(),
        task("A"),
        task("B"),
        task("C"),
        gateway("M", kind="parallelGateway"),
        end(),
        '<bpmn:endEvent id="E2"/>',
        flow("f0", "S", "A"),
        flow("f1", "A", "B"),
        flow("f2", "A", "C"),
        flow("f3", "B", "M"),
        flow("f4", "C", "M"),
        flow("f5", "M", "E"),
        flow("f6", "M", "E2"),
        flow("f7", "E2", "E"),
    )
    assert refused(data) == [
        "userTask 'A' has 2 outgoing flows; only a gateway may split the flow.",
        "parallelGateway 'M' both joins and splits the flow; draw a converging and a diverging gateway.",
        "endEvent 'E2' has outgoing flows; an end event ends the flow.",
    ]


def test_a_parallel_fork_closed_by_an_exclusive_gateway_is_not_a_block():
    data = bpmn(
        start(),
        gateway("Fork", kind="parallelGateway"),
        task("A"),
        task("B"),
        gateway("Merge"),
        end(),
        flow("f0", "S", "Fork"),
        flow("f1", "Fork", "A"),
        flow("f2", "Fork", "B"),
        flow("f3", "A", "Merge"),
        flow("f4", "B", "Merge"),
        flow("f5", "Merge", "E"),
    )
    assert refused(data) == [
        "EOMS flows are block-structured; the branches of parallelGateway 'Fork' do not join at one parallelGateway."
    ]


def test_parallel_branches_that_run_into_a_task_without_a_join_are_not_a_block():
    data = bpmn(
        start(),
        gateway("Fork", kind="parallelGateway"),
        task("A"),
        task("B"),
        task("After"),
        end(),
        flow("f0", "S", "Fork"),
        flow("f1", "Fork", "A"),
        flow("f2", "Fork", "B"),
        flow("f3", "A", "After"),
        flow("f4", "B", "After"),
        flow("f5", "After", "E"),
    )
    assert refused(data) == [
        "EOMS flows are block-structured; the branches of parallelGateway 'Fork' do not join at one parallelGateway."
    ]


def test_overlapping_exclusive_blocks_are_not_block_structured():
    # G1 splits three ways; two branches meet at J1 and the third only joins later, at D.
    data = bpmn(
        start(),
        gateway("G1", default="toC"),
        task("A"),
        task("B"),
        task("C"),
        gateway("J1"),
        task("D"),
        end(),
        flow("f0", "S", "G1"),
        flow("toA", "G1", "A", "${x == 1}"),
        flow("toB", "G1", "B", "${x == 2}"),
        flow("toC", "G1", "C"),
        flow("f1", "A", "J1"),
        flow("f2", "B", "J1"),
        flow("f3", "J1", "D"),
        flow("f4", "C", "D"),
        flow("f5", "D", "E"),
    )
    assert refused(data) == [
        "EOMS flows are block-structured; the branches of exclusiveGateway 'G1' do not join at one exclusiveGateway."
    ]


def test_an_exclusive_split_closed_by_a_parallel_join_is_not_a_block():
    data = decision(flow("toA", "G", "A", "${x == 1}"), flow("toB", "G", "B"), default="toB").replace(
        b'<bpmn:exclusiveGateway id="J"/>', b'<bpmn:parallelGateway id="J"/>'
    )
    assert refused(data) == [
        "EOMS flows are block-structured; the branches of exclusiveGateway 'G' do not join at one exclusiveGateway."
    ]


@pytest.mark.parametrize(
    "attrs, inner, message",
    [
        (
            "",
            "",
            "userTask 'A' names no one to approve or inform; set camunda:assignee, camunda:candidateUsers or "
            "camunda:candidateGroups, or the property eoms:approvers.",
        ),
        (
            'camunda:assignee="u1" camunda:candidateGroups="finance"',
            "",
            "userTask 'A' sets more than one of camunda:assignee, camunda:candidateUsers and camunda:candidateGroups; "
            "keep one, or set the property eoms:approvers.",
        ),
        (
            'camunda:assignee="${starter}"',
            "",
            "userTask 'A': camunda:assignee “${starter}” is an expression; EOMS needs user ids or a role here.",
        ),
        (
            'camunda:candidateGroups="finance,legal"',
            "",
            "userTask 'A': camunda:candidateGroups “finance,legal” names more than one group; EOMS takes one role.",
        ),
        (
            'camunda:candidateGroups="finance"',
            props(sla_hour="4"),
            "userTask 'A': unknown property eoms:sla_hour; known: eoms:approvers, eoms:approvers.users, "
            "eoms:approvers.role, eoms:approvers.project_role, eoms:approvers.levels, eoms:approvers.chain, "
            "eoms:approvers.field, eoms:mode, eoms:quorum.count, eoms:quorum.percent, eoms:sla_hours, "
            "eoms:remind_after_hours, eoms:on_timeout, eoms:editable_fields, eoms:comment_required_on_reject, "
            "eoms:allow_self_approval, eoms:if_empty.",
        ),
        (
            'camunda:candidateGroups="finance"',
            props(editable_fields="[amount"),
            "userTask 'A': property eoms:editable_fields “[amount” cannot be read.",
        ),
        (
            'camunda:candidateGroups="finance"',
            props(**{"approvers.levels": "99"}),
            "userTask 'A': approvers.levels: Input should be less than or equal to 10",
        ),
        (
            'camunda:candidateGroups="finance"',
            props(on_timeout="explode"),
            "userTask 'A': on_timeout: Input should be 'none', 'escalate', 'approve' or 'reject'",
        ),
        (
            'camunda:candidateGroups="finance" name="' + "x" * 101 + '"',
            "",
            "userTask 'A': name: String should have at most 100 characters",
        ),
        (
            'camunda:candidateGroups="finance"',
            "<bpmn:multiInstanceLoopCharacteristics><bpmn:completionCondition>${nrOfActiveInstances == 0}"
            "</bpmn:completionCondition></bpmn:multiInstanceLoopCharacteristics>",
            "userTask 'A': the completion condition ${nrOfActiveInstances == 0} cannot be read; EOMS reads "
            "${nrOfCompletedInstances >= 2}, ${nrOfCompletedInstances / nrOfInstances >= 0.6} "
            "or ${nrOfCompletedInstances == nrOfInstances}.",
        ),
        (
            'camunda:candidateGroups="finance"',
            "<bpmn:multiInstanceLoopCharacteristics><bpmn:completionCondition>"
            "${nrOfCompletedInstances / nrOfInstances &gt;= 0.333}</bpmn:completionCondition>"
            "</bpmn:multiInstanceLoopCharacteristics>",
            "userTask 'A': the completion condition ${nrOfCompletedInstances / nrOfInstances >= 0.333} cannot be "
            "read; EOMS reads ${nrOfCompletedInstances >= 2}, ${nrOfCompletedInstances / nrOfInstances >= 0.6} "
            "or ${nrOfCompletedInstances == nrOfInstances}.",
        ),
        (
            'camunda:candidateGroups="finance"',
            '<bpmn:multiInstanceLoopCharacteristics isSequential="true"><bpmn:completionCondition>'
            "${nrOfCompletedInstances &gt;= 1}</bpmn:completionCondition></bpmn:multiInstanceLoopCharacteristics>",
            "userTask 'A': a sequential multi-instance task cannot end early; remove its completion condition.",
        ),
    ],
    ids=[
        "no-approvers",
        "two-sources",
        "expression",
        "two-groups",
        "unknown-property",
        "bad-list",
        "levels-out-of-range",
        "bad-choice",
        "long-name",
        "odd-completion",
        "odd-percent",
        "sequential-early",
    ],
)
def test_task_settings_that_cannot_be_read_are_named(attrs, inner, message):
    data = bpmn(start(), task("A", attrs, inner), end(), *linear("A"))
    assert refused(data) == [message]


def test_process_level_problems_name_the_process():
    data = bpmn(start(), task("A"), end(), *linear("A"), process='id="P"').replace(
        b'<bpmn:process id="P">',
        b'<bpmn:process id="P">' + props(on_reject="archive").encode(),
    )
    assert refused(data) == ["process 'P': on_reject: Input should be 'rejected' or 'quoting'"]
