"""Who may call each approvals endpoint (see eoms.testing.matrix).

Definitions: the administrator changes them; approvers, project managers (the outsider is one, of
another project), finance and auditors read them; field engineers get 403. Instances and tasks
concern an order of world.project submitted by its PM on the world's "simple" flow (one node, role
approver): whoever may see the order sees them, the outsider gets 404; only the approver holds the
task. Delegations are everyone's own; ending one is for its user or an administrator."""

from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from eoms.accounts.services import set_delegation
from eoms.approvals import services
from eoms.approvals.models import ApprovalDefinition, ApprovalTask, TaskState
from eoms.core.uploads import inspect_upload
from eoms.orders.state import OrderState
from eoms.testing.factories import UserFactory
from eoms.testing.matrix import IDENTITIES, expect
from eoms.testing.world import PDF, SIMPLE_FLOW

BASE = "/api/v1/approvals"
DEFS = f"{BASE}/definitions"
SIGNED_IN = tuple(i for i in IDENTITIES if i != "anonymous")
# Who reads flows; the outsider is a project manager too, so reads them as well.
READERS = ("admin", "project_manager", "approver", "finance", "auditor")
ORDER_VIEWERS = ("admin", "project_manager", "approver", "field_engineer", "finance", "auditor")
ADMIN = ("admin",)


def published(world) -> ApprovalDefinition:
    return ApprovalDefinition.objects.get(key="simple", status="published")


def draft(world) -> ApprovalDefinition:
    return services.save_definition(actor=world.admin, key="draft-flow", name="Draft flow", document=SIMPLE_FLOW)


def pending(world):
    """An order in approval on the simple flow, and the approver's pending task."""
    order = world.order(OrderState.PENDING_APPROVAL)
    task = ApprovalTask.objects.get(instance__subject_id=str(order.id), state=TaskState.PENDING)
    return order, task


def _definition_path(suffix: str = "", maker=published):
    return lambda world: {"path": f"{DEFS}/{maker(world).id}{suffix}"}


def _put(world):
    definition = draft(world)
    return {"path": f"{DEFS}/{definition.id}", "json": {"name": "Draft flow (2)", "version": definition.version}}


def _publish(world):
    definition = draft(world)
    return {"path": f"{DEFS}/{definition.id}/publish", "json": {"version": definition.version}}


def _simulate(world):
    order = world.order(OrderState.QUOTING)
    return {"path": f"{DEFS}/{published(world).id}/simulate", "json": {"order_id": str(order.id)}}


def _import(world):
    from eoms.approvals.bpmn import export_bpmn
    from eoms.approvals.definition import parse_document

    data = export_bpmn(parse_document(SIMPLE_FLOW), key="imported", name="Imported review")
    return {"path": f"{DEFS}/import", "multipart": {"file": SimpleUploadedFile("imported.bpmn", data)}}


def _next_revision(world):
    """A running approval on simple v1, and simple v2 published."""
    pending(world)
    v1 = published(world)
    v2 = services.save_definition(
        actor=world.admin, definition_id=v1.id, name="Simple review", document=SIMPLE_FLOW, is_default=True
    )
    services.publish_definition(actor=world.admin, definition_id=v2.id)
    return v1, v2


def _migration(world):
    v1, v2 = _next_revision(world)
    return {"path": f"{DEFS}/{v1.id}/migration?to={v2.id}"}


def _migrate(world):
    v1, v2 = _next_revision(world)
    return {"path": f"{DEFS}/{v1.id}/migrate", "json": {"to": str(v2.id)}}


def _instance(suffix: str = "", body=None):
    def request(world):
        order, task = pending(world)
        out = {"path": f"{BASE}/instances/{task.instance_id}{suffix}"}
        if body is not None:
            out["json"] = body
        return out

    return request


def _attachment(world):
    order, task = pending(world)
    action = services.comment_approval(
        actor=world.pm, instance_id=task.instance_id, comment="图纸", attachments=[inspect_upload("drawing.pdf", PDF)]
    )
    return {"path": f"{BASE}/instances/{task.instance_id}/attachments/{action.attachments.get().id}"}


def _comment(world):
    order, task = pending(world)
    return {
        "path": f"{BASE}/instances/{task.instance_id}/comments",
        "multipart": {"comment": "请补充图纸", "files": [SimpleUploadedFile("drawing.pdf", PDF)]},
    }


def _order(suffix: str, state=OrderState.PENDING_APPROVAL):
    return lambda world: {"path": f"{BASE}/orders/{world.order(state).id}{suffix}"}


def _task(suffix: str = "", body=None):
    def request(world):
        order, task = pending(world)
        out = {"path": f"{BASE}/tasks/{task.id}{suffix}"}
        if callable(body):
            out["json"] = body(world)
        elif body is not None:
            out["json"] = body
        return out

    return request


def _cc_read(world):
    """A copy of the pending order's approval sent to finance (as a CC node would make it)."""
    from eoms.approvals.models import ApprovalStep, StepState, TaskKind

    order, task = pending(world)
    step = ApprovalStep.objects.create(
        instance=task.instance,
        node_id="copy",
        node_name="Copy",
        kind="cc",
        state=StepState.PASSED,
        started_at=timezone.now(),
    )
    cc = ApprovalTask.objects.create(
        instance=task.instance, step=step, kind=TaskKind.CC, state=TaskState.CC, assignee=world.finance
    )
    return {"path": f"{BASE}/tasks/{cc.id}/read"}


def _bulk(world):
    order, task = pending(world)
    return {"path": f"{BASE}/tasks/bulk", "json": {"task_ids": [str(task.id)], "decision": "approve"}}


def _new_delegation(world):
    deputy = UserFactory(username="deputy1")
    today = timezone.localdate()
    return {
        "path": f"{BASE}/delegations",
        "json": {
            "deputy_id": str(deputy.id),
            "starts_on": today.isoformat(),
            "ends_on": (today + timedelta(days=6)).isoformat(),
            "reason": "年假",
        },
    }


def _end_delegation(world):
    today = timezone.localdate()
    delegation = set_delegation(
        actor=world.pm, user=world.pm, deputy=world.approver, starts_on=today, ends_on=today + timedelta(days=3)
    )
    return {"path": f"{BASE}/delegations/{delegation.id}"}


ENDPOINTS = {
    # --- definitions
    ("GET", DEFS): {"request": lambda world: {"path": DEFS}, "expect": expect(200, READERS, outsider=200)},
    ("POST", DEFS): {
        "request": lambda world: {
            "path": DEFS,
            "json": {"name": "大额合同审批", "key": "large", "document": SIMPLE_FLOW},
        },
        "expect": expect(201, ADMIN, outsider=403),
    },
    ("POST", f"{DEFS}/import"): {"request": _import, "expect": expect(201, ADMIN, outsider=403)},
    ("GET", f"{DEFS}/{{definition_id}}"): {
        "request": _definition_path(),
        "expect": expect(200, READERS, outsider=200),
    },
    ("PUT", f"{DEFS}/{{definition_id}}"): {"request": _put, "expect": expect(200, ADMIN, outsider=403)},
    ("POST", f"{DEFS}/{{definition_id}}/publish"): {"request": _publish, "expect": expect(200, ADMIN, outsider=403)},
    ("POST", f"{DEFS}/{{definition_id}}/validate"): {
        "request": _definition_path("/validate", draft),
        "expect": expect(200, READERS, outsider=200),
    },
    # The outsider reads flows but not the order of another project.
    ("POST", f"{DEFS}/{{definition_id}}/simulate"): {"request": _simulate, "expect": expect(200, READERS)},
    ("POST", f"{DEFS}/{{definition_id}}/dry-run"): {
        "request": lambda world: {"path": f"{DEFS}/{draft(world).id}/dry-run", "json": {"limit": 10}},
        "expect": expect(200, ADMIN, outsider=403),
    },
    ("GET", f"{DEFS}/{{definition_id}}/bpmn"): {
        "request": _definition_path("/bpmn"),
        "expect": expect(200, READERS, outsider=200),
    },
    ("GET", f"{DEFS}/{{definition_id}}/migration"): {
        "request": _migration,
        "expect": expect(200, ADMIN, outsider=403),
    },
    ("POST", f"{DEFS}/{{definition_id}}/migrate"): {"request": _migrate, "expect": expect(200, ADMIN, outsider=403)},
    # --- instances
    ("GET", f"{BASE}/instances/{{instance_id}}"): {"request": _instance(), "expect": expect(200, ORDER_VIEWERS)},
    ("GET", f"{BASE}/instances/{{instance_id}}/attachments/{{attachment_id}}"): {
        "request": _attachment,
        "expect": expect(200, ORDER_VIEWERS),
    },
    ("GET", f"{BASE}/orders/{{order_id}}/approval"): {
        "request": _order("/approval"),
        "expect": expect(200, ORDER_VIEWERS),
    },
    ("GET", f"{BASE}/orders/{{order_id}}/route"): {
        "request": _order("/route", OrderState.QUOTING),
        "expect": expect(200, ORDER_VIEWERS),
    },
    # Only the initiator (the PM) withdraws; the initiator or an administrator nudges.
    ("POST", f"{BASE}/instances/{{instance_id}}/withdraw"): {
        "request": _instance("/withdraw", {"comment": "报价有误"}),
        "expect": expect(200, ("project_manager",)),
    },
    ("POST", f"{BASE}/instances/{{instance_id}}/nudge"): {
        "request": _instance("/nudge"),
        "expect": expect(200, ("project_manager", "admin")),
    },
    # Anyone who sees the approval comments, but the auditor, who changes nothing.
    ("POST", f"{BASE}/instances/{{instance_id}}/comments"): {
        "request": _comment,
        "expect": expect(201, ("admin", "project_manager", "approver", "field_engineer", "finance")),
    },
    # --- tasks: everyone has an inbox; only the assignee (the approver) acts on the task.
    ("GET", f"{BASE}/tasks"): {
        "request": lambda world: {"path": f"{BASE}/tasks?box=pending"},
        "expect": expect(200, SIGNED_IN, outsider=200),
    },
    ("GET", f"{BASE}/tasks/{{task_id}}"): {"request": _task(), "expect": expect(200, ORDER_VIEWERS)},
    ("POST", f"{BASE}/tasks/{{task_id}}/approve"): {
        "request": _task("/approve", {"comment": "同意"}),
        "expect": expect(200, ("approver",)),
    },
    ("POST", f"{BASE}/tasks/{{task_id}}/reject"): {
        "request": _task("/reject", {"comment": "单价偏高"}),
        "expect": expect(200, ("approver",)),
    },
    ("POST", f"{BASE}/tasks/{{task_id}}/transfer"): {
        "request": _task("/transfer", lambda world: {"to_user_id": str(world.admin.id), "comment": "请总经理定"}),
        "expect": expect(200, ("approver",)),
    },
    ("POST", f"{BASE}/tasks/{{task_id}}/add-signer"): {
        "request": _task("/add-signer", lambda world: {"user_id": str(world.finance.id), "position": "after"}),
        "expect": expect(200, ("approver",)),
    },
    # Only the recipient marks a copy read; others who see the order 403.
    ("POST", f"{BASE}/tasks/{{task_id}}/read"): {"request": _cc_read, "expect": expect(200, ("finance",))},
    # Bulk answers per item (a task not yours fails in its row, changing nothing); auditors decide nothing.
    ("POST", f"{BASE}/tasks/bulk"): {
        "request": _bulk,
        "expect": expect(200, tuple(i for i in SIGNED_IN if i != "auditor"), outsider=200),
    },
    # --- delegations
    ("GET", f"{BASE}/delegations"): {
        "request": lambda world: {"path": f"{BASE}/delegations"},
        "expect": expect(200, SIGNED_IN, outsider=200),
    },
    ("POST", f"{BASE}/delegations"): {
        "request": _new_delegation,
        "expect": expect(201, tuple(i for i in SIGNED_IN if i != "auditor"), outsider=201),
    },
    # Someone else's delegation does not exist for you.
    ("DELETE", f"{BASE}/delegations/{{delegation_id}}"): {
        "request": _end_delegation,
        "expect": expect(204, ("project_manager", "admin"), denied=404),
    },
}
