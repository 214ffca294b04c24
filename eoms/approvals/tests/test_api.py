"""The approvals API through the Django test client: the permission matrix of this context, then
flows through the API (build, validate, publish, submit, decide), BPMN export and import, and bad
input, which answers problem+json and never a 500."""

import hashlib
import json
import uuid
from datetime import timedelta

import defusedxml.ElementTree as SafeET
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from eoms.accounts.services import issue_api_token
from eoms.approvals.models import ApprovalDefinition, ApprovalTask, TaskState
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.orders.state import OrderState
from eoms.testing.matrix import DENIED, IDENTITIES, client_for, perform, write_counts
from eoms.testing.world import PDF, PNG

from .api_matrix import ENDPOINTS

BASE = "/api/v1/approvals"
DEFS = f"{BASE}/definitions"
# POSTs that compute and change nothing, whoever calls them.
COMPUTING = {
    ("POST", f"{BASE}/definitions/{{definition_id}}/validate"),
    ("POST", f"{BASE}/definitions/{{definition_id}}/simulate"),
    ("POST", f"{BASE}/definitions/{{definition_id}}/dry-run"),
}
MATRIX_CASES = [(key, identity) for key in sorted(ENDPOINTS) for identity in IDENTITIES]


def _id(value):
    return f"{value[0]} {value[1]}" if isinstance(value, tuple) else str(value)


@pytest.mark.parametrize(("key", "identity"), MATRIX_CASES, ids=_id)
def test_matrix(world, key, identity):
    method, _template = key
    entry = ENDPOINTS[key]
    request = entry["request"](world)
    before = write_counts()
    response = perform(client_for(world, identity), method, request)
    expected = entry["expect"][identity]
    assert response.status_code == expected, f"{identity}: {response.content[:400]!r}"
    if expected >= 400:
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == expected
    # Refused, read or computed: nothing changed. The bulk task is the approver's: for anyone else
    # its row fails and nothing changes either.
    bulk_of_others = key == ("POST", f"{BASE}/tasks/bulk") and identity != "approver"
    if expected in DENIED or method == "GET" or key in COMPUTING or bulk_of_others:
        assert write_counts() == before
    else:
        assert AuditEntry.objects.count() > before[AuditEntry._meta.label]
        assert OutboxMessage.objects.count() > before[OutboxMessage._meta.label]


# --- helpers ----------------------------------------------------------------------------------------


class Api:
    """A client speaking as one user: the page session (default) or a bearer token."""

    def __init__(self, user, *, token: bool = False):
        self.client = Client()
        self.meta = {}
        if token:
            self.meta["HTTP_AUTHORIZATION"] = f"Bearer {issue_api_token(actor=user, name='test')[1]}"
        else:
            self.client.force_login(user)

    def get(self, path, params=None):
        return self.client.get(path, params or {}, **self.meta)

    def post(self, path, body=None):
        return self.client.post(path, json.dumps(body if body is not None else {}), "application/json", **self.meta)

    def put(self, path, body):
        return self.client.put(path, json.dumps(body), "application/json", **self.meta)

    def delete(self, path):
        return self.client.delete(path, **self.meta)

    def multipart(self, path, data):
        return self.client.post(path, data, **self.meta)


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content[:800]
    return response.json()


def problem(response, status: int, code: str, fields: list[str] | None = None) -> dict:
    assert response.status_code == status, response.content[:800]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["title"] and body["detail"]
    if fields is not None:
        assert [e["field"] for e in body["errors"]] == fields
        assert all(e["message"] for e in body["errors"])
    return body


def approval(node_id: str, name: str, approvers: dict, **settings) -> dict:
    return {"type": "approval", "id": node_id, "name": name, "approvers": approvers, **settings}


def pending_task(order) -> ApprovalTask:
    return ApprovalTask.objects.get(instance__subject_id=str(order.id), state=TaskState.PENDING, kind="approver")


@pytest.fixture
def admin(world):
    return Api(world.admin)


@pytest.fixture
def pm(world):
    return Api(world.pm)


@pytest.fixture
def approver(world):
    return Api(world.approver)


# --- definitions: create, validate, publish -------------------------------------------------------------

BROKEN = {
    "nodes": [
        approval("dept", "部门审批", {"source": "role", "role": ""}),
        {
            "type": "branch",
            "id": "size",
            "name": "金额判断",
            "branches": [
                {
                    "id": "big",
                    "name": "大额",
                    "when": {"any_of": [[{"field": "amount", "operator": "gte", "value": "lots"}]]},
                    "nodes": [approval("gm", "总经理审批", {"source": "users", "users": []})],
                },
                {"id": "small", "name": "小额", "default": False, "when": None, "nodes": []},
            ],
        },
    ]
}
FIXED = {
    "nodes": [
        approval("dept", "部门审批", {"source": "role", "role": "approver"}),
        {
            "type": "branch",
            "id": "size",
            "name": "金额判断",
            "branches": [
                {
                    "id": "big",
                    "name": "大额",
                    "when": {"any_of": [[{"field": "amount", "operator": "gte", "value": "500000"}]]},
                    "nodes": [approval("gm", "总经理审批", {"source": "role", "role": "finance"})],
                },
                {"id": "small", "name": "小额", "default": True, "nodes": []},
            ],
        },
    ],
    "on_reject": "quoting",
}


def test_create_validate_publish_and_revise(world, admin):
    created = ok(admin.post(DEFS, {"name": "合同审批", "key": "contract", "document": BROKEN}), 201)
    assert (created["key"], created["revision"], created["status"], created["version"]) == ("contract", 1, "draft", 1)
    assert created["document"]["nodes"][0]["id"] == "dept"
    assert [r["revision"] for r in created["revisions"]] == [1]
    url = f"{DEFS}/{created['id']}"

    checked = ok(admin.post(f"{url}/validate"))
    assert checked["valid"] is False
    assert [(p["field"], p["node"]) for p in checked["problems"]] == [
        ("node:dept", "dept"),
        ("node:size", "size"),
        ("node:big", "big"),
        ("node:gm", "gm"),
        ("node:small", "small"),
    ]
    messages = [p["message"] for p in checked["problems"]]
    assert messages[0] == "Node “部门审批”: choose a role."
    assert "“金额判断”" in messages[1] and "default" in messages[1]
    assert messages[2] == "Branch “大额”: “lots” is not a number."
    assert messages[3] == "Node “总经理审批”: name at least one approver."
    assert messages[4] == "Branch “小额”: give it a condition."
    assert ok(admin.get(url))["problems"] == checked["problems"]

    before = write_counts()
    refused = problem(admin.post(f"{url}/publish", {"version": 1}), 422, "approval.definition_invalid")
    assert refused["errors"] == checked["problems"]
    assert write_counts() == before

    saved = ok(admin.put(url, {"document": FIXED, "version": 1}))
    assert (saved["id"], saved["version"], saved["status"], saved["name"]) == (created["id"], 2, "draft", "合同审批")
    assert saved["problems"] == []
    assert ok(admin.post(f"{url}/validate")) == {"valid": True, "problems": []}
    problem(admin.put(url, {"name": "stale", "version": 1}), 409, "approval.definition_conflict")

    published = ok(admin.post(f"{url}/publish", {"version": 2}))
    assert (published["status"], published["published_by"]["username"]) == ("published", "admin1")
    problem(admin.post(f"{url}/publish"), 409, "approval.definition_conflict")

    # Editing the published revision makes revision 2 as a draft (201); the published one is unchanged.
    revised = admin.put(
        url,
        {"priority": 5, "applies_when": {"any_of": [[{"field": "kind", "operator": "eq", "value": "construction"}]]}},
    )
    revised = ok(revised, 201)
    assert (revised["key"], revised["revision"], revised["status"], revised["priority"]) == ("contract", 2, "draft", 5)
    assert revised["document"] == ApprovalDefinition.objects.get(pk=created["id"]).document
    assert [(r["revision"], r["status"]) for r in revised["revisions"]] == [(2, "draft"), (1, "published")]
    again = problem(admin.put(url, {"priority": 6}), 409, "approval.definition_conflict")
    assert again["draft_id"] == revised["id"]

    listed = ok(admin.get(DEFS, {"status": "draft"}))
    assert [(d["key"], d["revision"]) for d in listed["results"]] == [("contract", 2)]
    everything = ok(Api(world.auditor).get(DEFS))
    assert everything["count"] == 3
    assert {(d["key"], d["revision"], d["status"]) for d in everything["results"]} == {
        ("simple", 1, "published"),
        ("contract", 1, "published"),
        ("contract", 2, "draft"),
    }
    assert ok(admin.get(DEFS, {"subject_type": "payments.payment"}))["count"] == 0


def test_bad_definitions_answer_422_with_field_paths(world, admin):
    before = write_counts()
    # Each error keeps its path in `field` and names its node or branch in `message`.
    cases = [
        (
            {"nodes": [{"type": "approval", "id": "a", "name": "A"}]},
            {
                "field": "document.nodes.0.approval.approvers",
                "node": "a",
                "message": "Node “A”: approvers: Field required",
            },
        ),
        (
            {"nodes": [approval("1st", "A", {"source": "role", "role": "approver"})]},
            {
                "field": "document.nodes.0.approval.id",
                "node": "1st",
                "message": "Node “A”: id: String should match pattern '^[A-Za-z][A-Za-z0-9_-]*$'",
            },
        ),
        (
            {
                "nodes": [
                    {
                        "type": "branch",
                        "id": "size",
                        "name": "金额判断",
                        "branches": [
                            {
                                "id": "big",
                                "name": "大额",
                                "when": {"any_of": [[{"field": "amount", "operator": "between", "value": "1"}]]},
                            }
                        ],
                    }
                ]
            },
            {
                "field": "document.nodes.0.branch.branches.0.when.any_of.0.0.operator",
                "node": "big",
                "message": "Branch “大额”: unknown operator “between”; use one of eq, ne, gt, gte, lt, lte, in, "
                "not_in, contains.",
            },
        ),
        ({"nodes": [], "extra": 1}, {"field": "document.extra", "message": "Extra inputs are not permitted"}),
    ]
    for document, error in cases:
        body = problem(admin.post(DEFS, {"name": "x", "document": document}), 422, "approval.definition_invalid")
        assert body["errors"] == [error]
    body = problem(
        admin.post(DEFS, {"name": "x", "document": {"nodes": [{"type": "loop", "id": "a"}]}}),
        422,
        "approval.definition_invalid",
    )
    assert [(e["field"], e["node"]) for e in body["errors"]] == [("document.nodes.0", "a")]
    problem(admin.post(DEFS, {"name": "x", "document": "nodes"}), 422, "validation_failed", ["document"])
    problem(admin.post(DEFS, {"document": {"nodes": []}}), 422, "validation_failed", ["name"])
    problem(admin.post(DEFS, {"name": "  ", "document": {"nodes": []}}), 422, "approval.definition_invalid", ["name"])
    problem(admin.post(DEFS, {"name": "x", "priority": -1}), 422, "validation_failed", ["priority"])
    problem(
        admin.post(DEFS, {"name": "x", "subject_type": "nothing.here"}),
        422,
        "approval.definition_invalid",
        ["subject_type"],
    )
    problem(
        admin.post(DEFS, {"name": "x", "applies_when": {"any_of": []}}),
        422,
        "validation_failed",
        ["applies_when.any_of"],
    )
    problem(admin.post(DEFS, {"name": "dup", "key": "simple"}), 422, "approval.definition_invalid", ["key"])
    response = admin.client.post(DEFS, "{not json", "application/json")
    assert response.status_code in (400, 422) and response["Content-Type"] == "application/problem+json"
    assert write_counts() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/definitions/{x}"),
        ("PUT", "/definitions/{x}"),
        ("POST", "/definitions/{x}/publish"),
        ("POST", "/definitions/{x}/validate"),
        ("GET", "/definitions/{x}/bpmn"),
        ("GET", "/instances/{x}"),
        ("POST", "/instances/{x}/withdraw"),
        ("POST", "/instances/{x}/nudge"),
        ("GET", "/orders/{x}/approval"),
        ("GET", "/orders/{x}/route"),
        ("GET", "/tasks/{x}"),
        ("POST", "/tasks/{x}/approve"),
        ("POST", "/tasks/{x}/reject"),
        ("DELETE", "/delegations/{x}"),
    ],
)
def test_ids_that_are_not_uuids_or_unknown_are_problems(world, method, path):
    client = Client()
    client.force_login(world.admin)
    body = json.dumps({"name": "x", "comment": "x"})
    before = write_counts()
    for value, status in (("not-a-uuid", 422), ("1' OR '1'='1", 422), (str(uuid.UUID(int=7)), 404)):
        response = client.generic(method, f"{BASE}{path.format(x=value)}", body, content_type="application/json")
        assert response.status_code == status, (value, response.content[:300])
        assert response["Content-Type"] == "application/problem+json"
        if status == 422:
            assert response.json()["code"] == "validation_failed"
    assert write_counts() == before


# --- through the API: submit, inbox, decide -----------------------------------------------------------

ORDERS = "/api/v1/orders"
TWO_STEPS = {
    "nodes": [
        approval("check", "财务审核", {"source": "users", "users": []}, editable_fields=["title"]),
        approval("final", "审批人终审", {"source": "role", "role": "approver"}),
        {"type": "cc", "id": "notify", "name": "抄送财务", "recipients": {"source": "role", "role": "finance"}},
    ]
}


def two_steps(world) -> dict:
    doc = json.loads(json.dumps(TWO_STEPS))
    doc["nodes"][0]["approvers"]["users"] = [str(world.finance.id)]
    return doc


def publish_large_flow(admin, document) -> dict:
    """A flow for orders of 500,000 and more, tried before the default one."""
    created = ok(
        admin.post(
            DEFS,
            {
                "name": "大额订单审批",
                "key": "large",
                "priority": 10,
                "applies_when": {"any_of": [[{"field": "amount", "operator": "gte", "value": "500000"}]]},
                "document": document,
            },
        ),
        201,
    )
    return ok(admin.post(f"{DEFS}/{created['id']}/publish"))


def test_submit_inbox_approve_to_approved(world, admin, pm, approver):
    publish_large_flow(admin, two_steps(world))
    order = world.order(OrderState.QUOTING, amount="800000.00")
    submitted = ok(pm.post(f"{ORDERS}/{order.id}/submit", {"comment": "请审批"}))
    assert submitted["state"] == "PENDING_APPROVAL"

    finance = Api(world.finance, token=True)
    inbox = ok(finance.get(f"{BASE}/tasks"))
    assert (inbox["count"], inbox["counts"]) == (1, {"pending": 1, "done": 0, "cc": 0, "unread_cc": 0, "delegated": 0})
    (item,) = inbox["results"]
    assert (item["node_id"], item["node_name"], item["state"], item["can_decide"]) == (
        "check",
        "财务审核",
        "pending",
        True,
    )
    assert item["reason"] == "named in the flow"
    assert item["instance"]["subject"]["repr"] == f"{order.number} {order.title}"
    assert item["instance"]["subject"]["url"] == f"/orders/{order.id}/"
    assert item["instance"]["initiator"]["username"] == "pm1"
    assert ok(approver.get(f"{BASE}/tasks"))["count"] == 0
    assert ok(finance.get(f"{BASE}/tasks", {"q": "no such order"}))["count"] == 0
    assert ok(finance.get(f"{BASE}/tasks", {"q": order.number}))["count"] == 1

    detail = ok(finance.get(f"{BASE}/tasks/{item['id']}"))
    assert detail["why"] == {"flow": "contract amount ≥ 500,000", "step": "", "task": "named in the flow"}
    assert detail["node"] == {"comment_required_on_reject": True, "editable_fields": ["title"]}
    assert detail["instance"]["definition"]["key"] == "large"
    assert [a["kind"] for a in detail["instance"]["timeline"]] == ["submit"]
    assert detail["instance"]["timeline"][0]["comment"] == "请审批"

    # The node lets finance edit the title; the approval records the change.
    stale = finance.post(f"{BASE}/tasks/{item['id']}/approve", {"version": item["version"] - 1})
    problem(stale, 409, "approval.conflict")
    problem(
        finance.post(f"{BASE}/tasks/{item['id']}/approve", {"changes": {"contract_amount": "1.00"}}),
        422,
        "approval.invalid",
        ["changes.contract_amount"],
    )
    decided = ok(
        finance.post(
            f"{BASE}/tasks/{item['id']}/approve",
            {"comment": "金额核对无误", "changes": {"title": "道路改造（核定）"}, "version": item["version"]},
        )
    )
    assert (decided["task"]["state"], decided["task"]["comment"], decided["task"]["can_decide"]) == (
        "approved",
        "金额核对无误",
        False,
    )
    order.refresh_from_db()
    assert order.title == "道路改造（核定）"
    problem(finance.post(f"{BASE}/tasks/{item['id']}/approve"), 409, "approval.task_not_pending")

    inbox = ok(approver.get(f"{BASE}/tasks"))
    assert (inbox["count"], inbox["counts"]["pending"]) == (1, 1)
    (task,) = inbox["results"]
    assert task["reason"] == "has the role Approver"
    ok(approver.post(f"{BASE}/tasks/{task['id']}/approve", {"comment": "同意"}))

    assert ok(pm.get(f"{ORDERS}/{order.id}"))["state"] == "APPROVED"
    instance = ok(pm.get(f"{BASE}/orders/{order.id}/approval"))
    assert (instance["state"], instance["decided"], instance["subject"]["id"]) == ("approved", True, str(order.id))
    assert [a["kind"] for a in instance["timeline"]] == ["submit", "approve", "approve", "cc", "complete"]
    assert [(s["node_id"], s["state"]) for s in instance["steps"]] == [
        ("check", "approved"),
        ("final", "approved"),
        ("notify", "passed"),
    ]
    assert instance["can"] == {"withdraw": False, "nudge": False, "comment": True}
    cc = ok(finance.get(f"{BASE}/tasks", {"box": "cc"}))
    assert (cc["count"], cc["counts"]["cc"], cc["counts"]["unread_cc"], cc["counts"]["done"]) == (1, 1, 1, 1)
    assert [t["node_id"] for t in ok(finance.get(f"{BASE}/tasks", {"box": "done"}))["results"]] == ["check"]
    problem(approver.get(f"{BASE}/tasks", {"box": "everything"}), 422, "validation_failed", ["box"])


def test_reject_returns_to_an_earlier_node_and_to_the_initiator(world, admin, pm, approver):
    publish_large_flow(admin, two_steps(world))
    order = world.order(OrderState.QUOTING, amount="800000.00")
    ok(pm.post(f"{ORDERS}/{order.id}/submit"))
    finance = Api(world.finance)
    ok(finance.post(f"{BASE}/tasks/{pending_task(order).id}/approve"))
    task = pending_task(order)
    url = f"{BASE}/tasks/{task.id}/reject"

    # The task lists where it may go back: the earlier node that approved, and the initiator.
    detail = ok(approver.get(f"{BASE}/tasks/{task.id}"))
    assert [t["node_id"] for t in detail["return_targets"]] == ["check", "initiator"]
    assert ok(pm.get(f"{BASE}/tasks/{task.id}"))["return_targets"] == []  # not theirs to decide

    before = write_counts()
    problem(approver.post(url, {"comment": "退回", "return_to": "nowhere"}), 422, "approval.invalid", ["return_to"])
    problem(approver.post(url, {"comment": "退回", "return_to": "final"}), 422, "approval.invalid", ["return_to"])
    problem(approver.post(url, {"return_to": "check"}), 422, "approval.invalid", ["comment"])
    problem(approver.post(url, {"comment": "x", "return_to": "check" * 20}), 422, "validation_failed", ["return_to"])
    assert write_counts() == before

    returned = ok(approver.post(url, {"comment": "请财务复核单价", "return_to": "check"}))
    assert returned["task"]["state"] == "rejected"
    assert (returned["instance"]["state"], returned["instance"]["round"]) == ("running", 2)
    assert returned["instance"]["timeline"][-1]["kind"] == "return"
    assert returned["instance"]["timeline"][-1]["detail"] == {"return_to": "check"}
    again = pending_task(order)
    assert (again.assignee, again.step.node_id) == (world.finance, "check")
    assert ok(pm.get(f"{ORDERS}/{order.id}"))["state"] == "PENDING_APPROVAL"

    ok(finance.post(f"{BASE}/tasks/{again.id}/approve"))
    last = pending_task(order)
    back = ok(approver.post(f"{BASE}/tasks/{last.id}/reject", {"comment": "请修改报价", "return_to": "initiator"}))
    assert back["instance"]["state"] == "returned"
    assert ok(pm.get(f"{ORDERS}/{order.id}"))["state"] == "QUOTING"


def test_reject_ends_the_approval(world, pm, approver):
    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order)
    problem(approver.post(f"{BASE}/tasks/{task.id}/reject", {}), 422, "approval.invalid", ["comment"])
    decided = ok(approver.post(f"{BASE}/tasks/{task.id}/reject", {"comment": "单价偏高"}))
    assert (decided["task"]["state"], decided["instance"]["state"]) == ("rejected", "rejected")
    assert ok(pm.get(f"{ORDERS}/{order.id}"))["state"] == "REJECTED"


def test_bulk_with_one_failure(world, approver):
    first = world.order(OrderState.PENDING_APPROVAL, title="一号")
    second = world.order(OrderState.PENDING_APPROVAL, title="二号")
    done = world.order(OrderState.APPROVED, title="已批")
    ids = [
        pending_task(first).id,
        ApprovalTask.objects.get(instance__subject_id=str(done.id)).id,
        pending_task(second).id,
    ]

    problem(
        approver.post(f"{BASE}/tasks/bulk", {"task_ids": [str(i) for i in ids], "decision": "reject"}),
        422,
        "approval.invalid",
        ["comment"],
    )
    problem(
        approver.post(f"{BASE}/tasks/bulk", {"task_ids": [], "decision": "approve"}),
        422,
        "validation_failed",
        ["task_ids"],
    )
    problem(
        approver.post(f"{BASE}/tasks/bulk", {"task_ids": ["nope"], "decision": "approve"}),
        422,
        "validation_failed",
        ["task_ids.0"],
    )
    problem(
        approver.post(f"{BASE}/tasks/bulk", {"task_ids": [str(ids[0])], "decision": "maybe"}),
        422,
        "validation_failed",
        ["decision"],
    )

    result = ok(
        approver.post(
            f"{BASE}/tasks/bulk", {"task_ids": [str(i) for i in ids], "decision": "approve", "comment": "同意"}
        )
    )
    assert (result["succeeded"], result["failed"]) == (2, 1)
    assert [(r["task_id"], r["ok"], r["code"]) for r in result["results"]] == [
        (str(ids[0]), True, "ok"),
        (str(ids[1]), False, "approval.task_not_pending"),
        (str(ids[2]), True, "ok"),
    ]
    assert result["results"][1]["detail"] == "This task is already Approved; nothing was changed."
    for order in (first, second):
        order.refresh_from_db()
        assert order.state == OrderState.APPROVED


# --- BPMN ----------------------------------------------------------------------------------------------


def test_bpmn_export_downloads_xml_and_its_import_creates_a_draft(world, admin):
    created = ok(admin.post(DEFS, {"name": "合同审批", "key": "contract", "document": FIXED}), 201)
    response = Api(world.auditor).get(f"{DEFS}/{created['id']}/bpmn")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="contract-v1.bpmn"'
    root = SafeET.fromstring(response.content)
    bpmn = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
    assert root.tag == f"{bpmn}definitions"
    (process,) = root.findall(f"{bpmn}process")
    assert (process.get("id"), process.get("name")) == ("contract", "合同审批")
    assert [t.get("id") for t in process.findall(f"{bpmn}userTask")] == ["dept", "gm"]
    assert [g.get("id") for g in process.findall(f"{bpmn}exclusiveGateway")] == ["size", "size.join"]

    # The same key is taken: the file imports under a key of the caller's choosing.
    before = write_counts()
    taken = admin.multipart(f"{DEFS}/import", {"file": SimpleUploadedFile("contract-v1.bpmn", response.content)})
    problem(taken, 422, "approval.definition_invalid", ["key"])
    assert write_counts() == before
    imported = ok(
        admin.multipart(
            f"{DEFS}/import",
            {"file": SimpleUploadedFile("contract-v1.bpmn", response.content), "key": "contract-copy"},
        ),
        201,
    )
    assert (imported["key"], imported["name"], imported["revision"], imported["status"]) == (
        "contract-copy",
        "合同审批",
        1,
        "draft",
    )
    assert imported["document"] == created["document"]
    assert imported["problems"] == []


def test_bpmn_import_refuses_bad_files(world, admin):
    before = write_counts()
    url = f"{DEFS}/import"
    problem(admin.multipart(url, {}), 422, "validation_failed", ["file"])
    problem(admin.multipart(url, {"file": SimpleUploadedFile("flow.txt", b"<x/>")}), 422, "validation_failed", ["file"])
    body = problem(
        admin.multipart(url, {"file": SimpleUploadedFile("flow.bpmn", b"not xml at all")}), 422, "approval.bpmn_invalid"
    )
    assert [e["field"] for e in body["errors"]] == ["file"]
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol2;</bpmn:definitions>'
    )
    problem(
        admin.multipart(url, {"file": SimpleUploadedFile("lol.bpmn", laughs)}), 422, "approval.bpmn_invalid", ["file"]
    )
    script = (
        b'<?xml version="1.0"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">'
        b'<bpmn:process id="p"><bpmn:startEvent id="s"/><bpmn:scriptTask id="evil" name="rm"/>'
        b'<bpmn:endEvent id="e"/></bpmn:process></bpmn:definitions>'
    )
    body = problem(
        admin.multipart(url, {"file": SimpleUploadedFile("evil.bpmn", script)}), 422, "approval.bpmn_invalid"
    )
    assert any("evil" in e["message"] for e in body["errors"])
    problem(
        Api(world.pm).multipart(url, {"file": SimpleUploadedFile("flow.bpmn", b"x")}), 403, "approval.permission_denied"
    )
    assert write_counts() == before


# --- simulation, dry run, migration ---------------------------------------------------------------------

PICKED = {
    "nodes": [
        approval("chosen", "指定审批人", {"source": "picked"}),
        approval("final", "终审", {"source": "role", "role": "approver"}, mode="all"),
    ]
}


def test_simulate_a_draft_and_an_orders_route(world, admin, pm):
    order = world.order(OrderState.QUOTING, amount="800000.00")
    draft = ok(admin.post(DEFS, {"name": "指定审批", "key": "picked", "document": PICKED}), 201)
    url = f"{DEFS}/{draft['id']}/simulate"

    plain = ok(pm.post(url, {"order_id": str(order.id)}))
    assert (plain["definition"]["key"], plain["definition"]["status"]) == ("picked", "draft")
    assert plain["why"] == "chosen for the simulation"
    assert plain["subject"]["id"] == str(order.id)
    # Nobody picked and no fallback set: administrators would decide.
    assert [(s["node_id"], s["mode"], s["note"], [a["username"] for a in s["approvers"]]) for s in plain["stages"]] == [
        ("chosen", "any", "admins", ["admin1"]),
        ("final", "all", "", ["approver1"]),
    ]
    chosen = ok(pm.post(url, {"order_id": str(order.id), "picked": {"chosen": str(world.finance.id)}}))
    (first, final) = chosen["stages"]
    assert first["approvers"] == [
        {
            "id": str(world.finance.id),
            "username": "finance1",
            "display_name": world.finance.display_name,
            "reason": f"picked by {world.pm} at submission",
            "on_behalf_of": None,
        }
    ]
    assert final["approvers"][0]["reason"] == "has the role Approver"
    problem(
        pm.post(url, {"order_id": str(order.id), "picked": {"chosen": "bob"}}),
        422,
        "validation_failed",
        ["picked.chosen"],
    )
    problem(Api(world.outsider).post(url, {"order_id": str(order.id)}), 404, "order.not_found")
    problem(pm.post(url, {"order_id": str(uuid.UUID(int=3))}), 404, "order.not_found")

    # The route of an order: the flow today's facts choose (the default "simple" one).
    route = ok(pm.get(f"{BASE}/orders/{order.id}/route"))
    assert (route["definition"]["key"], route["why"]) == ("simple", "default flow")
    assert [(s["node_id"], [a["username"] for a in s["approvers"]]) for s in route["stages"]] == [
        ("review", ["approver1"])
    ]
    publish_large_flow(admin, PICKED)
    route = ok(pm.get(f"{BASE}/orders/{order.id}/route", {"picked": f"chosen:{world.finance.id}"}))
    assert (route["definition"]["key"], route["why"]) == ("large", "contract amount ≥ 500,000")
    assert [[a["username"] for a in s["approvers"]] for s in route["stages"]] == [["finance1"], ["approver1"]]
    for bad in ("chosen", f":{world.finance.id}", "chosen:bob"):
        problem(pm.get(f"{BASE}/orders/{order.id}/route", {"picked": bad}), 422, "validation_failed", ["picked"])


def test_dry_run_lists_orders_that_would_route_differently(world, admin):
    small = world.order(OrderState.QUOTING, amount="100000.00", title="小额")
    large = world.order(OrderState.QUOTING, amount="900000.00", title="大额")
    draft = ok(
        admin.post(
            DEFS,
            {
                "name": "大额",
                "key": "large",
                "priority": 10,
                "applies_when": {"any_of": [[{"field": "amount", "operator": "gte", "value": "500000"}]]},
                "document": {"nodes": two_steps(world)["nodes"][:2]},
            },
        ),
        201,
    )
    result = ok(admin.post(f"{DEFS}/{draft['id']}/dry-run", {"limit": 5}))
    assert result["problems"] == []
    rows = {row["subject"]["id"]: row for row in result["rows"]}
    assert set(rows) == {str(small.id), str(large.id)}
    assert (rows[str(small.id)]["differs"], rows[str(small.id)]["draft_flow"]) == (False, "Simple review v1")
    big = rows[str(large.id)]
    assert (big["differs"], big["current_flow"], big["draft_flow"]) == (True, "Simple review v1", "大额 v1")
    assert big["current"] == [{"node": "Review", "users": [str(world.approver)]}]
    assert big["draft"] == [
        {"node": "财务审核", "users": [str(world.finance)]},
        {"node": "审批人终审", "users": [str(world.approver)]},
    ]
    problem(admin.post(f"{DEFS}/{draft['id']}/dry-run", {"limit": 0}), 422, "validation_failed", ["limit"])


def test_migration_preview_and_move(world, admin):
    order = world.order(OrderState.PENDING_APPROVAL)
    v1 = ApprovalDefinition.objects.get(key="simple", status="published")
    renamed = {"nodes": [approval("review", "复核", {"source": "role", "role": "approver"})]}
    v2 = ok(admin.put(f"{DEFS}/{v1.id}", {"document": renamed}), 201)
    problem(admin.get(f"{DEFS}/{v1.id}/migration", {"to": v2["id"]}), 422, "approval.invalid", ["to"])
    problem(admin.get(f"{DEFS}/{v1.id}/migration"), 422, "validation_failed", ["to"])
    ok(admin.post(f"{DEFS}/{v2['id']}/publish"))

    (row,) = ok(admin.get(f"{DEFS}/{v1.id}/migration", {"to": v2["id"]}))
    assert row["instance"]["subject"]["id"] == str(order.id)
    assert row["instance"]["definition"]["revision"] == 1
    assert row["moves"] == [{"node_id": "review", "from_name": "Review", "to_name": "复核", "stays": True}]
    assert row["restart"] is False

    moved = ok(admin.post(f"{DEFS}/{v1.id}/migrate", {"to": v2["id"]}))
    assert moved == [{"instance_id": row["instance"]["id"], "restart": False}]
    instance = ok(admin.get(f"{BASE}/instances/{row['instance']['id']}"))
    assert (instance["definition"]["revision"], instance["timeline"][-1]["kind"]) == (2, "migrate")
    assert [(t["node_name"], t["state"]) for t in instance["tasks"]] == [("复核", "pending")]
    assert ok(admin.get(f"{DEFS}/{v1.id}/migration", {"to": v2["id"]})) == []


def test_simulation_of_a_flow_with_a_cc_node(world, admin, pm):
    order = world.order(OrderState.QUOTING, amount="800000.00")
    # A default flow tried before the world's (priority 1 < 100): the dry run routes orders through it.
    body = {"name": "两级", "key": "two", "document": two_steps(world), "is_default": True, "priority": 1}
    draft = ok(admin.post(DEFS, body), 201)
    result = ok(pm.post(f"{DEFS}/{draft['id']}/simulate", {"order_id": str(order.id)}))
    assert [(s["node_id"], s["kind"], [a["username"] for a in s["approvers"]]) for s in result["stages"]] == [
        ("check", "approval", ["finance1"]),
        ("final", "approval", ["approver1"]),
        ("notify", "cc", ["finance1"]),
    ]
    dry = ok(admin.post(f"{DEFS}/{draft['id']}/dry-run", {"limit": 5}))
    assert [s["node"] for s in dry["rows"][0]["draft"]] == ["财务审核", "审批人终审", "抄送财务"]


# --- instances: withdraw, nudge, comments ----------------------------------------------------------------


def test_order_approval_withdraw_nudge_and_comments(world, admin, pm, approver):
    quoting = world.order(OrderState.QUOTING)
    problem(pm.get(f"{BASE}/orders/{quoting.id}/approval"), 404, "approval.not_found")
    problem(Api(world.outsider).get(f"{BASE}/orders/{quoting.id}/approval"), 404, "order.not_found")

    order = world.order(OrderState.PENDING_APPROVAL)
    current = ok(pm.get(f"{BASE}/orders/{order.id}/approval"))
    assert (current["state"], current["definition"]["key"], current["initiator"]["username"]) == (
        "running",
        "simple",
        "pm1",
    )
    assert current["can"] == {"withdraw": True, "nudge": True, "comment": True}
    assert [(t["node_id"], t["assignee"]["username"], t["state"]) for t in current["tasks"]] == [
        ("review", "approver1", "pending")
    ]
    url = f"{BASE}/instances/{current['id']}"

    nudged = ok(pm.post(f"{url}/nudge"))
    assert [u["username"] for u in nudged["nudged"]] == ["approver1"]
    problem(admin.post(f"{url}/nudge"), 409, "approval.conflict")
    problem(approver.post(f"{url}/nudge"), 403, "approval.permission_denied")

    files = [SimpleUploadedFile("drawing.pdf", PDF), SimpleUploadedFile("photo.png", PNG)]
    posted = ok(approver.multipart(f"{url}/comments", {"comment": "请补充管线图", "files": files}), 201)
    assert (posted["kind"], posted["comment"], posted["actor"]["username"]) == ("comment", "请补充管线图", "approver1")
    assert [(a["original_name"], a["content_type"], a["size"]) for a in posted["attachments"]] == [
        ("drawing.pdf", "application/pdf", len(PDF)),
        ("photo.png", "image/png", len(PNG)),
    ]
    download = pm.get(f"{url}/attachments/{posted['attachments'][0]['id']}")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    assert posted["attachments"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    problem(pm.get(f"{url}/attachments/{uuid.UUID(int=5)}"), 404, "approval.not_found")

    before = write_counts()
    problem(pm.multipart(f"{url}/comments", {"comment": "  "}), 422, "approval.invalid", ["comment"])
    exe = SimpleUploadedFile("tool.pdf", b"MZ\x90\x00" + b"\x00" * 200)
    problem(pm.multipart(f"{url}/comments", {"comment": "x", "files": [exe]}), 422, "attachment.rejected", ["files"])
    many = [SimpleUploadedFile(f"{i}.pdf", PDF) for i in range(11)]
    problem(pm.multipart(f"{url}/comments", {"comment": "x", "files": many}), 422, "validation_failed", ["files"])
    problem(Api(world.auditor).multipart(f"{url}/comments", {"comment": "x"}), 403, "approval.permission_denied")
    problem(approver.post(f"{url}/withdraw"), 403, "approval.permission_denied")
    assert write_counts() == before

    withdrawn = ok(pm.post(f"{url}/withdraw", {"comment": "报价有误"}))
    assert (withdrawn["state"], withdrawn["timeline"][-1]["kind"], withdrawn["timeline"][-1]["comment"]) == (
        "withdrawn",
        "withdraw",
        "报价有误",
    )
    assert [t["state"] for t in withdrawn["tasks"]] == ["cancelled"]
    assert ok(pm.get(f"{ORDERS}/{order.id}"))["state"] == "QUOTING"
    problem(pm.post(f"{url}/withdraw"), 409, "approval.conflict")
    # The last approval of the order, though no longer running.
    assert ok(pm.get(f"{BASE}/orders/{order.id}/approval"))["id"] == current["id"]


def test_withdraw_after_a_decision_is_refused(world, pm):
    publish_large_flow(Api(world.admin), two_steps(world))
    order = world.order(OrderState.QUOTING, amount="800000.00")
    ok(pm.post(f"{ORDERS}/{order.id}/submit"))
    ok(Api(world.finance).post(f"{BASE}/tasks/{pending_task(order).id}/approve"))
    instance_id = pending_task(order).instance_id
    problem(pm.post(f"{BASE}/instances/{instance_id}/withdraw"), 409, "approval.conflict")


# --- transfer and add a signer ----------------------------------------------------------------------------


def test_transfer_and_add_signer(world, admin, approver):
    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order)
    before = write_counts()
    problem(
        approver.post(f"{BASE}/tasks/{task.id}/transfer", {"to_user_id": str(uuid.UUID(int=9))}),
        422,
        "validation_failed",
        ["to_user_id"],
    )
    problem(
        approver.post(f"{BASE}/tasks/{task.id}/transfer", {"to_user_id": str(world.pm.id)}),
        422,
        "approval.invalid",
        ["to_user"],
    )
    problem(
        approver.post(f"{BASE}/tasks/{task.id}/transfer", {"to_user_id": str(world.approver.id)}),
        422,
        "approval.invalid",
        ["to_user"],
    )
    problem(
        approver.post(f"{BASE}/tasks/{task.id}/add-signer", {"user_id": str(world.finance.id), "position": "above"}),
        422,
        "validation_failed",
        ["position"],
    )
    problem(
        Api(world.finance).post(f"{BASE}/tasks/{task.id}/transfer", {"to_user_id": str(world.admin.id)}),
        403,
        "approval.permission_denied",
    )
    assert write_counts() == before

    signer = ok(
        approver.post(
            f"{BASE}/tasks/{task.id}/add-signer",
            {"user_id": str(world.finance.id), "position": "before", "comment": "请财务先看"},
        )
    )
    assert (signer["task"]["assignee"]["username"], signer["task"]["kind"], signer["task"]["state"]) == (
        "finance1",
        "added",
        "pending",
    )
    assert signer["task"]["reason"] == f"added by {world.approver}, to decide before them"
    task.refresh_from_db()
    assert task.state == TaskState.WAITING

    finance = Api(world.finance)
    ok(finance.post(f"{BASE}/tasks/{signer['task']['id']}/approve"))
    task.refresh_from_db()
    assert task.state == TaskState.PENDING
    moved = ok(
        approver.post(f"{BASE}/tasks/{task.id}/transfer", {"to_user_id": str(world.admin.id), "comment": "请总经理定"})
    )
    assert (moved["task"]["assignee"]["username"], moved["task"]["state"]) == ("admin1", "pending")
    assert moved["task"]["reason"] == f"transferred by {world.approver}"
    assert [a["kind"] for a in moved["instance"]["timeline"]] == ["submit", "add_signer", "approve", "transfer"]
    assert ok(admin.get(f"{BASE}/tasks"))["counts"]["pending"] == 1
    ok(admin.post(f"{BASE}/tasks/{moved['task']['id']}/approve", {"comment": "同意"}))
    order.refresh_from_db()
    assert order.state == OrderState.APPROVED


# --- delegations -----------------------------------------------------------------------------------------


def test_delegation_sends_new_tasks_to_the_deputy(world, admin, approver):
    today = timezone.localdate()
    period = {"starts_on": today.isoformat(), "ends_on": (today + timedelta(days=7)).isoformat()}
    made = ok(
        approver.post(f"{BASE}/delegations", {"deputy_id": str(world.finance.id), "reason": "出差", **period}), 201
    )
    assert (made["user"]["username"], made["deputy"]["username"], made["reason"], made["active"]) == (
        "approver1",
        "finance1",
        "出差",
        True,
    )
    problem(
        approver.post(f"{BASE}/delegations", {"deputy_id": str(world.admin.id), **period}),
        422,
        "delegation.invalid",
        ["starts_on"],
    )
    problem(
        Api(world.finance).post(f"{BASE}/delegations", {"deputy_id": str(world.approver.id), **period}),
        422,
        "delegation.invalid",
        ["deputy"],
    )
    problem(
        approver.post(
            f"{BASE}/delegations",
            {"deputy_id": str(world.admin.id), "starts_on": period["ends_on"], "ends_on": period["starts_on"]},
        ),
        422,
        "delegation.invalid",
    )
    problem(
        approver.post(f"{BASE}/delegations", {"user_id": str(world.pm.id), "deputy_id": str(world.admin.id), **period}),
        403,
        "approval.permission_denied",
    )
    problem(
        approver.post(f"{BASE}/delegations", {"deputy_id": str(uuid.UUID(int=4)), **period}),
        422,
        "validation_failed",
        ["deputy_id"],
    )
    problem(
        approver.post(
            f"{BASE}/delegations",
            {"deputy_id": str(world.admin.id), "starts_on": "someday", "ends_on": period["ends_on"]},
        ),
        422,
        "validation_failed",
        ["starts_on"],
    )

    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order)
    assert (task.assignee, task.on_behalf_of) == (world.finance, world.approver)
    finance = Api(world.finance)
    (item,) = ok(finance.get(f"{BASE}/tasks"))["results"]
    assert (item["assignee"]["username"], item["on_behalf_of"]["username"]) == ("finance1", "approver1")
    delegated = ok(approver.get(f"{BASE}/tasks", {"box": "delegated"}))
    assert (delegated["count"], delegated["counts"]["delegated"], delegated["counts"]["pending"]) == (1, 1, 0)

    by_admin = ok(
        admin.post(f"{BASE}/delegations", {"user_id": str(world.pm.id), "deputy_id": str(world.engineer.id), **period}),
        201,
    )
    assert (by_admin["user"]["username"], by_admin["deputy"]["username"]) == ("pm1", "engineer1")
    assert [d["id"] for d in ok(approver.get(f"{BASE}/delegations"))] == [made["id"]]
    assert {d["id"] for d in ok(Api(world.finance).get(f"{BASE}/delegations"))} == {made["id"]}
    assert {d["id"] for d in ok(admin.get(f"{BASE}/delegations"))} == {made["id"], by_admin["id"]}

    problem(finance.delete(f"{BASE}/delegations/{made['id']}"), 404, "delegation.not_found")
    assert approver.delete(f"{BASE}/delegations/{made['id']}").status_code == 204
    assert ok(approver.get(f"{BASE}/delegations")) == []
    (ended,) = ok(approver.get(f"{BASE}/delegations", {"include_ended": "true"}))
    assert (ended["id"], ended["active"]) == (made["id"], False) and ended["revoked_at"]
    problem(approver.delete(f"{BASE}/delegations/{made['id']}"), 404, "delegation.not_found")


def test_engineers_do_not_read_flows(world):
    engineer = Api(world.engineer)
    problem(engineer.get(DEFS), 403, "approval.permission_denied")
    definition = ApprovalDefinition.objects.get(key="simple")
    problem(engineer.get(f"{DEFS}/{definition.id}"), 403, "approval.permission_denied")
    problem(engineer.get(f"{DEFS}/{definition.id}/bpmn"), 403, "approval.permission_denied")
