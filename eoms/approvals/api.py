"""Approvals API: flow definitions (CRUD, validate, publish, simulate, dry-run, BPMN export and
import, migration of running instances), instances (detail, withdraw, nudge, comments), the task
inbox and its actions (approve, reject, transfer, add signer, bulk) and delegations.

Who may call what: administrators change flows; approvers, project managers, finance and auditors
read them (policies.can_view_definitions; others get 403). Instances and tasks are seen by whoever
may see their object or holds a task on it (others get 404); a task is decided only by its
assignee (403 for anyone else who sees it). Every endpoint authenticates; errors are problem+json.
"""

import uuid
from datetime import date, datetime
from typing import Any, Literal

from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import File, Form, Query, Router, Schema
from ninja.files import UploadedFile
from pydantic import Field

from eoms.accounts import selectors as accounts_selectors
from eoms.accounts import services as accounts_services
from eoms.accounts.roles import Role
from eoms.core.api import ProblemSchema, UserRef
from eoms.core.errors import DomainError, ValidationFailed
from eoms.core.ratelimit import EXPENSIVE
from eoms.core.uploads import inspect_upload

from . import engine, policies, selectors, services
from .definition import Condition
from .errors import ApprovalConflict, ApprovalPermissionDenied, InstanceNotFound
from .models import (
    ActionAttachment,
    ActionKind,
    ApprovalDefinition,
    ApprovalInstance,
    ApprovalTask,
    DefinitionStatus,
    InstanceState,
    TaskKind,
    TaskState,
)
from .subjects import get_adapter

router = Router(tags=["approvals"])

ERRORS = {400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 422: ProblemSchema}
ORDER = "orders.order"  # the subject type of orders, as orders registers it (approvals never imports orders)
MAX_FILES = 10
# Who may call, as the OpenAPI document says it.
WHO_READS_FLOWS = "Who: administrators, approvers, project managers, finance and auditors (others 403)."
WHO_SEES_THE_OBJECT = "Who: anyone who may see the order or holds a task on it (others 404)."
WHO_HOLDS_THE_TASK = "Who: the task's assignee (others who see the task 403, the rest 404)."
_EXAMPLE = "0190a5e4-7c1b-7000-8000-000000000001"


# ------------------------------------------------------------------------------------------ schemas

# The document is checked by the service (definition.parse_document), whose errors name the node at
# fault ("Node “GM”: approvers: Field required"), rather than by the request schema.
DOCUMENT_HELP = (
    "The flow: {nodes: [...], on_reject: rejected|quoting}. A node is an approval {type: approval, id, name, "
    "approvers: {source: users|role|project_role|manager|picked|field, ...}, mode: any|all|sequence|quorum, "
    "quorum, sla_hours, remind_after_hours, on_timeout, editable_fields, comment_required_on_reject, "
    "allow_self_approval, if_empty}, a CC {type: cc, id, name, recipients}, or a branch/parallel {type, id, "
    "name, branches: [{id, name, when: {any_of: [[{field, operator, value}]]}, default, nodes}]}. A malformed "
    "document answers 422 with each error's path in `field` and its node named in `message`."
)


class SubjectOut(Schema):
    type: str
    id: str
    repr: str
    url: str


class DefinitionRef(Schema):
    id: uuid.UUID
    key: str
    revision: int
    name: str
    status: DefinitionStatus


class ProblemItem(Schema):
    field: str
    node: str = ""
    message: str


class DefinitionOut(DefinitionRef):
    status_label: str
    description: str
    subject_type: str
    priority: int
    is_default: bool
    applies_when: dict | None
    version: int
    created_by: UserRef | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    published_by: UserRef | None


class RevisionOut(Schema):
    id: uuid.UUID
    revision: int
    status: DefinitionStatus
    version: int
    updated_at: datetime
    published_at: datetime | None


class DefinitionDetailOut(DefinitionOut):
    document: dict
    problems: list[ProblemItem] = Field(description="What stops publishing, each naming its node (empty: none)")
    revisions: list[RevisionOut] = Field(description="Every revision of this flow's key, newest first")


class DefinitionPage(Schema):
    count: int
    page: int
    page_size: int
    results: list[DefinitionOut]


class DefinitionFilterIn(Schema):
    status: DefinitionStatus | None = None
    subject_type: str | None = Field(None, max_length=60)
    page: int = Field(1, ge=1, le=100000)
    page_size: int = Field(50, ge=1, le=200)


class DefinitionIn(Schema):
    name: str = Field(max_length=200)
    key: str = Field("", max_length=60, description="Stable identifier of the flow; from the name when empty")
    subject_type: str = Field(ORDER, max_length=60)
    description: str = Field("", max_length=4000)
    priority: int = Field(100, ge=0, le=100000, description="Lower is tried first when choosing a flow")
    is_default: bool = False
    applies_when: Condition | None = None
    document: dict = Field(default_factory=lambda: {"nodes": []}, description=DOCUMENT_HELP)


class DefinitionUpdateIn(Schema):
    version: int | None = Field(None, description="The version you read; a newer one on the server answers 409")
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    priority: int | None = Field(None, ge=0, le=100000)
    is_default: bool | None = None
    applies_when: Condition | None = None
    document: dict | None = Field(None, description=DOCUMENT_HELP)


class PublishIn(Schema):
    version: int | None = Field(None, description="The version you read; a newer one on the server answers 409")


class ValidationOut(Schema):
    valid: bool
    problems: list[ProblemItem]


class SimulateIn(Schema):
    order_id: uuid.UUID
    picked: dict[str, uuid.UUID] = Field(
        default_factory=dict, description="Approvers picked at submission: node id → user id"
    )


class ApproverOut(Schema):
    id: uuid.UUID
    username: str
    display_name: str
    reason: str
    on_behalf_of: UserRef | None


class StageOut(Schema):
    node_id: str
    name: str
    kind: str
    mode: str
    approvers: list[ApproverOut]
    reason: str = Field(description="Why the flow comes here: the branch condition that held")
    parallel: str = Field(description="The parallel branch this stage runs in (empty: none)")
    note: str = Field(description="'admins' or 'approve' when nobody was found and the node's fallback applies")


class SimulationOut(Schema):
    definition: DefinitionRef
    why: str = Field(description="Why this flow applies")
    subject: SubjectOut
    stages: list[StageOut]


class DryRunIn(Schema):
    limit: int = Field(50, ge=1, le=500, description="How many of the latest objects to route")


class RouteStageOut(Schema):
    node: str
    users: list[str]


class DryRunRowOut(Schema):
    subject: SubjectOut
    current_flow: str
    current: list[RouteStageOut]
    draft_flow: str
    draft: list[RouteStageOut]
    differs: bool


class DryRunOut(Schema):
    rows: list[DryRunRowOut]
    problems: list[ProblemItem]


class MoveOut(Schema):
    node_id: str
    from_name: str
    to_name: str | None
    stays: bool


class InstanceRef(Schema):
    id: uuid.UUID
    state: InstanceState
    state_label: str
    subject: SubjectOut
    initiator: UserRef
    definition: DefinitionRef
    started_at: datetime
    finished_at: datetime | None


class MigrationRowOut(Schema):
    instance: InstanceRef
    moves: list[MoveOut]
    restart: bool = Field(description="No active node survives in the new revision: it starts again from its beginning")


class MigrateIn(Schema):
    to: uuid.UUID = Field(description="The published revision of the same flow to move to")
    instance_ids: list[uuid.UUID] | None = Field(None, max_length=1000, description="Only these (default: all)")


class MigratedOut(Schema):
    instance_id: uuid.UUID
    restart: bool


class StepOut(Schema):
    node_id: str
    node_name: str
    kind: str
    round: int
    state: str
    mode: str
    needed: int
    reason: str
    branch_id: str
    started_at: datetime
    finished_at: datetime | None
    due_at: datetime | None


class TaskOut(Schema):
    id: uuid.UUID
    kind: TaskKind
    state: TaskState
    state_label: str
    node_id: str
    node_name: str
    assignee: UserRef
    on_behalf_of: UserRef | None
    reason: str = Field(description="Why this user: 'has the role approver', 'manager level 2 of …'")
    step_reason: str = Field(description="Why the flow came to this node: 'amount ≥ 500,000 → GM'")
    created_at: datetime
    decided_at: datetime | None
    comment: str
    due_at: datetime | None
    overdue: bool
    version: int
    can_decide: bool


class AttachmentOut(Schema):
    id: uuid.UUID
    original_name: str
    content_type: str
    size: int
    sha256: str


class ActionOut(Schema):
    kind: ActionKind
    kind_label: str
    actor: UserRef | None = Field(description="Empty: done by the system (a timer, an automatic rule)")
    on_behalf_of: UserRef | None
    node_id: str
    node_name: str
    comment: str
    detail: dict
    at: datetime
    attachments: list[AttachmentOut]


class InstancePermissions(Schema):
    withdraw: bool
    nudge: bool
    comment: bool


class InstanceDetailOut(InstanceRef):
    round: int
    decided: bool
    steps: list[StepOut]
    tasks: list[TaskOut]
    timeline: list[ActionOut]
    can: InstancePermissions


class InstanceSummaryOut(Schema):
    id: uuid.UUID
    state: InstanceState
    subject: SubjectOut
    initiator: UserRef


class TaskListItem(TaskOut):
    instance: InstanceSummaryOut


class TaskCounts(Schema):
    pending: int
    done: int
    cc: int
    unread_cc: int
    delegated: int


class TaskPage(Schema):
    count: int
    page: int
    page_size: int
    counts: TaskCounts
    results: list[TaskListItem]


class TaskFilterIn(Schema):
    box: Literal["pending", "done", "cc", "delegated"] = "pending"
    q: str = Field("", max_length=100, description="Search in the object's number and title")
    subject_type: str | None = Field(None, max_length=60)
    overdue: bool | None = None
    page: int = Field(1, ge=1, le=100000)
    page_size: int = Field(50, ge=1, le=200)


class WhyOut(Schema):
    flow: str = Field(description="Why this flow was chosen for the object")
    step: str = Field(description="Why the flow came to this node (the branch condition)")
    task: str = Field(description="Why this user got the task")


class NodeRulesOut(Schema):
    comment_required_on_reject: bool
    editable_fields: list[str]


class ReturnTargetOut(Schema):
    node_id: str = Field(description="A node id, or 'initiator' (back for revision; resubmitted, it continues here)")
    name: str


class TaskDetailOut(Schema):
    task: TaskOut
    instance: InstanceDetailOut
    why: WhyOut
    node: NodeRulesOut | None
    return_targets: list[ReturnTargetOut] = Field(
        description="Where rejecting this task may send the approval back (`return_to` of reject); empty when "
        "the caller cannot decide it"
    )


class ApproveIn(Schema):
    comment: str = Field("", max_length=4000)
    changes: dict[str, Any] | None = Field(None, description="Object fields this node lets approvers edit")
    version: int | None = Field(None, description="The task version you read; a newer one answers 409")


class RejectIn(Schema):
    comment: str = Field("", max_length=4000)
    return_to: str | None = Field(
        None, max_length=60, description="An earlier approval node's id, or 'initiator'; empty: the approval ends"
    )
    version: int | None = Field(None, description="The task version you read; a newer one answers 409")


class TransferIn(Schema):
    to_user_id: uuid.UUID
    comment: str = Field("", max_length=4000)


class AddSignerIn(Schema):
    user_id: uuid.UUID
    position: Literal["before", "after", "parallel"]
    comment: str = Field("", max_length=4000)


class BulkIn(Schema):
    task_ids: list[uuid.UUID] = Field(min_length=1, max_length=200)
    decision: Literal["approve", "reject"]
    comment: str = Field("", max_length=4000)


class BulkItemOut(Schema):
    task_id: uuid.UUID
    ok: bool
    code: str
    detail: str


class BulkOut(Schema):
    succeeded: int
    failed: int
    results: list[BulkItemOut]


class WithdrawIn(Schema):
    comment: str = Field("", max_length=4000)


class NudgeOut(Schema):
    nudged: list[UserRef]


class DelegationOut(Schema):
    id: uuid.UUID
    user: UserRef
    deputy: UserRef
    starts_on: date
    ends_on: date
    reason: str
    active: bool = Field(description="In force today")
    revoked_at: datetime | None
    created_at: datetime


class DelegationIn(Schema):
    user_id: uuid.UUID | None = Field(None, description="Whose delegation (administrators only; default: yours)")
    deputy_id: uuid.UUID
    starts_on: date
    ends_on: date
    reason: str = Field("", max_length=200)


class DelegationFilterIn(Schema):
    include_ended: bool = False


# ------------------------------------------------------------------------------------------ rendering


def _user(u) -> dict | None:
    return None if u is None else {"id": u.id, "username": u.username, "display_name": u.display_name or u.username}


def _subject(subject) -> dict:
    return {"type": subject.type, "id": str(subject.id), "repr": subject.repr, "url": subject.url or ""}


class _Subjects:
    """Subjects loaded once per request: a page of tasks names the same order many times."""

    def __init__(self):
        self._seen: dict[tuple[str, str], dict] = {}

    def of(self, subject_type: str, subject_id: str, fallback: str) -> dict:
        key = (subject_type, subject_id)
        if key not in self._seen:
            try:
                self._seen[key] = _subject(get_adapter(subject_type).load(subject_id))
            except (DomainError, LookupError):  # the object is gone: show what the instance recorded
                self._seen[key] = {"type": subject_type, "id": subject_id, "repr": fallback, "url": ""}
        return self._seen[key]


def _definition_ref(d: ApprovalDefinition) -> dict:
    return {"id": d.id, "key": d.key, "revision": d.revision, "name": d.name, "status": d.status}


def definition_out(d: ApprovalDefinition) -> dict:
    return {
        **_definition_ref(d),
        "status_label": str(d.get_status_display()),
        "description": d.description,
        "subject_type": d.subject_type,
        "priority": d.priority,
        "is_default": d.is_default,
        "applies_when": d.applies_when,
        "version": d.version,
        "created_by": _user(d.created_by),
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "published_at": d.published_at,
        "published_by": _user(d.published_by),
    }


def definition_detail(actor, d: ApprovalDefinition) -> dict:
    revisions = selectors.definition_revisions(actor=actor, key=d.key)
    return {
        **definition_out(d),
        "document": d.document,
        "problems": [
            {"field": p.get("field", ""), "node": p.get("node", ""), "message": str(p["message"])}
            for p in services.check_definition(d)
        ],
        "revisions": [
            {
                "id": r.id,
                "revision": r.revision,
                "status": r.status,
                "version": r.version,
                "updated_at": r.updated_at,
                "published_at": r.published_at,
            }
            for r in revisions
        ],
    }


def _task_out(actor, task: ApprovalTask, instance: ApprovalInstance) -> dict:
    task.instance = instance  # policies read the instance's state; it is already loaded
    due = task.step.due_at
    return {
        "id": task.id,
        "kind": task.kind,
        "state": task.state,
        "state_label": str(task.get_state_display()),
        "node_id": task.step.node_id,
        "node_name": task.step.node_name,
        "assignee": _user(task.assignee),
        "on_behalf_of": _user(task.on_behalf_of),
        "reason": task.reason,
        "step_reason": task.step.reason,
        "created_at": task.created_at,
        "decided_at": task.decided_at,
        "comment": task.comment,
        "due_at": due,
        "overdue": bool(due and task.state == TaskState.PENDING and due < timezone.now()),
        "version": task.version,
        "can_decide": policies.can_decide_task(actor, task),
    }


def _instance_ref(instance: ApprovalInstance, subjects: _Subjects) -> dict:
    return {
        "id": instance.id,
        "state": instance.state,
        "state_label": str(instance.get_state_display()),
        "subject": subjects.of(instance.subject_type, instance.subject_id, instance.subject_repr),
        "initiator": _user(instance.initiator),
        "definition": _definition_ref(instance.definition),
        "started_at": instance.started_at,
        "finished_at": instance.finished_at,
    }


def _action_out(a) -> dict:
    return {
        "kind": a.kind,
        "kind_label": str(a.get_kind_display()),
        "actor": _user(a.actor),
        "on_behalf_of": _user(a.on_behalf_of),
        "node_id": a.node_id,
        "node_name": a.node_name,
        "comment": a.comment,
        "detail": a.detail or {},
        "at": a.at,
        "attachments": [
            {
                "id": f.id,
                "original_name": f.original_name,
                "content_type": f.content_type,
                "size": f.size,
                "sha256": f.sha256,
            }
            for f in a.attachments.all()
        ],
    }


def instance_detail(actor, instance: ApprovalInstance) -> dict:
    tasks = instance.tasks.select_related("step", "assignee", "on_behalf_of").order_by("created_at", "position")
    return {
        **_instance_ref(instance, _Subjects()),
        "round": instance.round,
        "decided": instance.decided,
        "steps": [
            {
                "node_id": s.node_id,
                "node_name": s.node_name,
                "kind": s.kind,
                "round": s.round,
                "state": s.state,
                "mode": s.mode,
                "needed": s.needed,
                "reason": s.reason,
                "branch_id": s.branch_id,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "due_at": s.due_at,
            }
            for s in instance.steps.all()
        ],
        "tasks": [_task_out(actor, t, instance) for t in tasks],
        "timeline": [_action_out(a) for a in selectors.instance_timeline(instance)],
        "can": {
            "withdraw": policies.can_withdraw(actor, instance),
            "nudge": policies.can_nudge(actor, instance),
            "comment": policies.can_comment(actor, instance),
        },
    }


def task_detail(actor, task: ApprovalTask) -> dict:
    instance = selectors.access_instance(actor, task.instance_id)
    submitted = instance.actions.filter(kind__in=[ActionKind.SUBMIT]).order_by("at", "id").first()
    node = engine.flow_of(instance.definition).node(task.step.node_id)
    rules = None
    if node is not None and node.type == "approval":
        rules = {"comment_required_on_reject": node.comment_required_on_reject, "editable_fields": node.editable_fields}
    return {
        "task": _task_out(actor, task, instance),
        "instance": instance_detail(actor, instance),
        "why": {
            "flow": str((submitted.detail or {}).get("why", "")) if submitted else "",
            "step": task.step.reason,
            "task": task.reason,
        },
        "node": rules,
        "return_targets": _return_targets(actor, task, instance),
    }


def _return_targets(actor, task: ApprovalTask, instance: ApprovalInstance) -> list[dict]:
    if not policies.can_decide_task(actor, task):
        return []
    earlier = [{"node_id": n, "name": name} for n, name in engine.return_targets(instance, task.step)]
    return [*earlier, {"node_id": "initiator", "name": _("The initiator, for revision")}]


def _page(qs, page: int, page_size: int, render) -> dict:
    start = (page - 1) * page_size
    return {
        "count": qs.count(),
        "page": page,
        "page_size": page_size,
        "results": [render(o) for o in qs[start : start + page_size]],
    }


def _stage(stage: dict) -> dict:
    return {
        "node_id": stage["node_id"],
        "name": stage["name"],
        "kind": stage["kind"],
        "mode": stage["mode"] or "",
        "approvers": [
            {**_user(a["user"]), "reason": str(a["reason"]), "on_behalf_of": _user(a["on_behalf_of"])}
            for a in stage["approvers"]
        ],
        "reason": str(stage["reason"] or ""),
        "parallel": str(stage["parallel"] or ""),
        "note": stage["note"] or "",
    }


def _simulation(result: dict) -> dict:
    return {
        "definition": _definition_ref(result["definition"]),
        "why": str(result["why"]),
        "subject": _subject(result["subject"]),
        "stages": [_stage(s) for s in result["stages"]],
    }


# ------------------------------------------------------------------------------------------ access


def _require_view_definitions(actor) -> None:
    if not policies.can_view_definitions(actor):
        raise ApprovalPermissionDenied(_("You may not read approval flows."))


def _require_manage_definitions(actor) -> None:
    if not policies.can_manage_definitions(actor):
        raise ApprovalPermissionDenied(_("Only an administrator may change approval flows."))


def _definition(actor, definition_id) -> ApprovalDefinition:
    """A flow the actor may read: 403 for a role that reads no flows, 404 for an unknown id."""
    _require_view_definitions(actor)
    return selectors.access_definition(actor, definition_id)


def _order_subject(actor, order_id):
    """The order as an approval subject, if the actor may see it (its NotFound otherwise)."""
    adapter = get_adapter(ORDER)
    subject = adapter.load(order_id)
    if not (adapter.can_view(actor, subject) or selectors.has_task_on(actor, ORDER, subject.id)):
        raise adapter.not_found()
    return subject


def _active_user(user_id, field: str):
    user = accounts_selectors.get_active_user(user_id)
    if user is None:
        raise ValidationFailed(errors=[{"field": field, "message": _("No such active user.")}])
    return user


def _check_task_version(actor, task: ApprovalTask, version: int | None) -> None:
    """A stale read of one's own task is a 409; anyone else's task is the service's 403 to give."""
    if version is not None and task.assignee_id == actor.pk and version != task.version:
        raise ApprovalConflict(
            _("This task changed since you read it (now version %(v)s); reload it.") % {"v": task.version}
        )


# ------------------------------------------------------------------------------------------ definitions


@router.get(
    "/definitions",
    response={200: DefinitionPage, 403: ProblemSchema, 422: ProblemSchema},
    summary="List approval flows (administrators, approvers, project managers, finance, auditors)",
)
def list_definitions(request: HttpRequest, filters: Query[DefinitionFilterIn]):
    _require_view_definitions(request.auth)
    qs = selectors.list_definitions(
        actor=request.auth, subject_type=filters.subject_type, status=filters.status
    ).select_related("created_by", "published_by")
    return _page(qs, filters.page, filters.page_size, definition_out)


@router.post(
    "/definitions",
    response={201: DefinitionDetailOut, **ERRORS},
    summary="Create a flow as a draft (administrator)",
    description="A new key starts at revision 1. A draft may be incomplete: `problems` lists what stops publishing.",
)
def create_definition(request: HttpRequest, payload: DefinitionIn):
    definition = services.save_definition(
        actor=request.auth,
        name=payload.name,
        key=payload.key,
        document=payload.document,
        subject_type=payload.subject_type,
        description=payload.description,
        priority=payload.priority,
        is_default=payload.is_default,
        applies_when=payload.applies_when.model_dump(mode="json") if payload.applies_when else None,
    )
    return 201, definition_detail(request.auth, _definition(request.auth, definition.id))


@router.post(
    "/definitions/import",
    response={201: DefinitionDetailOut, **ERRORS},
    summary="Import a BPMN 2.0 file as a new draft flow (administrator)",
    description="The subset EOMS exports: start/end events, user and send tasks, exclusive and parallel "
    "gateways, sequence flows. A file EOMS cannot take answers 422 naming every element at fault. The key "
    "and name come from the process unless given; a key in use answers 422 on `key`.",
)
def import_definition(
    request: HttpRequest,
    file: File[UploadedFile],
    key: Form[str] = "",
    name: Form[str] = "",
    subject_type: Form[str] = ORDER,
):
    from .bpmn import MAX_BYTES, import_bpmn

    _require_manage_definitions(request.auth)
    filename = (file.name or "").lower()
    if not filename.endswith((".bpmn", ".xml")):
        raise ValidationFailed(errors=[{"field": "file", "message": _("Choose a .bpmn (BPMN 2.0 XML) file.")}])
    doc, meta = import_bpmn(file.read(MAX_BYTES + 1))
    definition = services.save_definition(
        actor=request.auth,
        name=name.strip() or meta["name"],
        key=key.strip() or meta["key"],
        document=doc,
        subject_type=subject_type,
    )
    return 201, definition_detail(request.auth, _definition(request.auth, definition.id))


@router.get(
    "/definitions/{definition_id}",
    response={200: DefinitionDetailOut, 403: ProblemSchema, 404: ProblemSchema, 422: ProblemSchema},
    summary="A flow with its document, the problems that stop publishing, and its revisions",
    description=WHO_READS_FLOWS,
)
def get_definition(request: HttpRequest, definition_id: uuid.UUID):
    return definition_detail(request.auth, _definition(request.auth, definition_id))


@router.put(
    "/definitions/{definition_id}",
    response={200: DefinitionDetailOut, 201: DefinitionDetailOut, **ERRORS},
    summary="Save a flow (administrator): a draft in place (200); a published one as a new draft revision (201)",
    description="Fields left out keep their values. A draft of the same key already open answers 409 with "
    "`draft_id`; a stale `version` answers 409.",
)
def update_definition(request: HttpRequest, definition_id: uuid.UUID, payload: DefinitionUpdateIn):
    actor = request.auth
    _require_manage_definitions(actor)
    current = selectors.access_definition(actor, definition_id)
    data = payload.dict(exclude_unset=True)
    for required in ("name", "document", "priority", "is_default", "description"):
        if required in data and data[required] is None:
            raise ValidationFailed(errors=[{"field": required, "message": _("May not be null.")}])
    applies_when = current.applies_when
    if "applies_when" in data:
        applies_when = payload.applies_when.model_dump(mode="json") if payload.applies_when else None
    definition = services.save_definition(
        actor=actor,
        definition_id=current.id,
        name=data.get("name", current.name),
        document=payload.document if "document" in data else current.document,
        subject_type=current.subject_type,
        description=data.get("description", current.description),
        priority=data.get("priority", current.priority),
        is_default=data.get("is_default", current.is_default),
        applies_when=applies_when,
        expected_version=data.get("version"),
    )
    status = 200 if definition.id == current.id else 201
    return status, definition_detail(actor, _definition(actor, definition.id))


@router.post(
    "/definitions/{definition_id}/publish",
    response={200: DefinitionDetailOut, **ERRORS},
    summary="Publish a draft (administrator); 422 lists every problem, each naming its node",
    description="The key's previously published revision is superseded; running approvals stay on theirs.",
)
def publish_definition(request: HttpRequest, definition_id: uuid.UUID, payload: PublishIn):
    definition = services.publish_definition(
        actor=request.auth, definition_id=definition_id, expected_version=payload.version
    )
    return definition_detail(request.auth, _definition(request.auth, definition.id))


@router.post(
    "/definitions/{definition_id}/validate",
    response={200: ValidationOut, 403: ProblemSchema, 404: ProblemSchema, 422: ProblemSchema},
    summary="Check a flow: every problem that would stop publishing (changes nothing)",
    description=WHO_READS_FLOWS,
)
def validate_definition(request: HttpRequest, definition_id: uuid.UUID):
    problems = definition_detail(request.auth, _definition(request.auth, definition_id))["problems"]
    return {"valid": not problems, "problems": problems}


@router.post(
    "/definitions/{definition_id}/simulate",
    response={200: SimulationOut, **ERRORS},
    summary="Who would approve an order on this flow, in what order and why (changes nothing)",
    description="Who: those who read flows (others 403), for an order they may see (404 otherwise).",
    throttle=EXPENSIVE,
)
def simulate_definition(request: HttpRequest, definition_id: uuid.UUID, payload: SimulateIn):
    definition = _definition(request.auth, definition_id)
    result = services.simulate(
        actor=request.auth,
        subject_type=definition.subject_type,
        subject_id=payload.order_id,
        definition_id=definition.id,
        picked={k: str(v) for k, v in payload.picked.items()},
    )
    return _simulation(result)


@router.post(
    "/definitions/{definition_id}/dry-run",
    response={200: DryRunOut, **ERRORS},
    summary="Route the latest orders through this (draft) flow and today's flows; which would differ "
    "(administrator, changes nothing)",
    throttle=EXPENSIVE,
)
def dry_run_definition(request: HttpRequest, definition_id: uuid.UUID, payload: DryRunIn):
    result = services.dry_run(actor=request.auth, definition_id=definition_id, limit=payload.limit)
    return {
        "rows": [
            {
                "subject": _subject(row["subject"]),
                "current_flow": row["current_flow"],
                "current": row["current"],
                "draft_flow": row["draft_flow"],
                "draft": row["draft"],
                "differs": row["differs"],
            }
            for row in result["rows"]
        ],
        "problems": [
            {"field": p.get("field", ""), "node": p.get("node", ""), "message": str(p["message"])}
            for p in result["problems"]
        ],
    }


@router.get(
    "/definitions/{definition_id}/bpmn",
    response={403: ProblemSchema, 404: ProblemSchema, 422: ProblemSchema},
    summary="Download a flow as BPMN 2.0 XML (opens in bpmn.io and Camunda Modeler)",
    description=WHO_READS_FLOWS,
    openapi_extra={"responses": {"200": {"description": "<key>-v<revision>.bpmn", "content": {"application/xml": {}}}}},
    throttle=EXPENSIVE,
)
def export_definition(request: HttpRequest, definition_id: uuid.UUID):
    from .bpmn import export_bpmn

    definition = _definition(request.auth, definition_id)
    data = export_bpmn(engine.document_of(definition), key=definition.key, name=definition.name)
    response = HttpResponse(data, content_type="application/xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{definition.key}-v{definition.revision}.bpmn"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@router.get(
    "/definitions/{definition_id}/migration",
    response={200: list[MigrationRowOut], **ERRORS},
    summary="Preview moving running approvals to another revision: where each active task goes (administrator)",
)
def preview_migration(request: HttpRequest, definition_id: uuid.UUID, to: uuid.UUID):
    rows = services.preview_migration(actor=request.auth, from_id=definition_id, to_id=to)
    subjects = _Subjects()
    return [
        {
            "instance": _instance_ref(row["instance"], subjects),
            "moves": [
                {"node_id": m["node_id"], "from_name": m["from"], "to_name": m["to"], "stays": m["stays"]}
                for m in row["moves"]
            ],
            "restart": row["restart"],
        }
        for row in rows
    ]


@router.post(
    "/definitions/{definition_id}/migrate",
    response={200: list[MigratedOut], **ERRORS},
    summary="Move running approvals to the published revision of the same flow (administrator)",
)
def migrate_definition(request: HttpRequest, definition_id: uuid.UUID, payload: MigrateIn):
    moved = services.migrate_instances(
        actor=request.auth,
        from_id=definition_id,
        to_id=payload.to,
        instance_ids=[str(i) for i in payload.instance_ids] if payload.instance_ids is not None else None,
    )
    return moved


# ------------------------------------------------------------------------------------------ instances


@router.get(
    "/instances/{instance_id}",
    response={200: InstanceDetailOut, 404: ProblemSchema, 422: ProblemSchema},
    summary="An approval: its flow, object, steps, tasks and timeline",
    description=WHO_SEES_THE_OBJECT,
)
def get_instance(request: HttpRequest, instance_id: uuid.UUID):
    return instance_detail(request.auth, selectors.access_instance(request.auth, instance_id))


@router.get(
    "/instances/{instance_id}/attachments/{attachment_id}",
    response={404: ProblemSchema, 422: ProblemSchema},
    summary="Download a file given with an action of an approval",
    description=WHO_SEES_THE_OBJECT,
    openapi_extra={"responses": {"200": {"description": "The file"}}},
)
def download_attachment(request: HttpRequest, instance_id: uuid.UUID, attachment_id: uuid.UUID):
    instance = selectors.access_instance(request.auth, instance_id)
    attachment = ActionAttachment.objects.filter(pk=attachment_id, action__instance=instance).first()
    if attachment is None:
        raise InstanceNotFound(_("No such file on this approval."))
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=True,
        filename=attachment.original_name,
        content_type=attachment.content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


@router.get(
    "/orders/{order_id}/approval",
    response={200: InstanceDetailOut, 404: ProblemSchema, 422: ProblemSchema},
    summary="The current (or else the last) approval of an order; 404 when it never had one",
    description=WHO_SEES_THE_OBJECT,
)
def order_approval(request: HttpRequest, order_id: uuid.UUID):
    subject = _order_subject(request.auth, order_id)
    instance = selectors.current_instance(ORDER, subject.id) or (
        selectors.instances_of(ORDER, subject.id).order_by("-started_at").first()
    )
    if instance is None:
        raise InstanceNotFound(_("This order has no approval."))
    return instance_detail(request.auth, selectors.access_instance(request.auth, instance.id))


@router.get(
    "/orders/{order_id}/route",
    response={200: SimulationOut, **ERRORS},
    summary="Who would approve this order if you submitted it now, in what order and why (changes nothing)",
    description="`picked` gives the approvers you would pick at submission, as node_id:user_id (repeatable). "
    + WHO_SEES_THE_OBJECT,
)
def order_route(request: HttpRequest, order_id: uuid.UUID, picked: Query[list[str]] = None):
    subject = _order_subject(request.auth, order_id)
    chosen = {}
    for item in picked or []:
        node_id, _sep, user_id = item.partition(":")
        try:
            user_id = str(uuid.UUID(user_id.strip()))
        except ValueError:
            node_id = ""
        if not node_id.strip():
            raise ValidationFailed(
                errors=[
                    {"field": "picked", "message": _("Give node_id:user_id, e.g. review:%(id)s") % {"id": _EXAMPLE}}
                ]
            )
        chosen[node_id.strip()] = user_id
    result = services.simulate(actor=request.auth, subject_type=ORDER, subject_id=subject.id, picked=chosen)
    return _simulation(result)


@router.post(
    "/instances/{instance_id}/withdraw",
    response={200: InstanceDetailOut, **ERRORS},
    summary="Withdraw your request before anyone has decided (initiator)",
    description="Who: the initiator (others who see it 403, the rest 404).",
)
def withdraw(request: HttpRequest, instance_id: uuid.UUID, payload: WithdrawIn):
    instance = services.withdraw_approval(actor=request.auth, instance_id=instance_id, comment=payload.comment)
    return instance_detail(request.auth, selectors.access_instance(request.auth, instance.id))


@router.post(
    "/instances/{instance_id}/nudge",
    response={200: NudgeOut, **ERRORS},
    summary="Remind the pending approvers (initiator or administrator; each at most once an hour)",
)
def nudge(request: HttpRequest, instance_id: uuid.UUID):
    tasks = services.nudge_approval(actor=request.auth, instance_id=instance_id)
    return {"nudged": [_user(t.assignee) for t in tasks]}


@router.post(
    "/instances/{instance_id}/comments",
    response={201: ActionOut, **ERRORS},
    summary="Comment on an approval, with files (anyone who sees it, but auditors)",
    description="multipart/form-data: `comment` and up to 10 `files` (type recognised by content; size limited). "
    "A comment is required without files.",
)
def comment_on_approval(
    request: HttpRequest,
    instance_id: uuid.UUID,
    comment: Form[str] = "",
    files: File[list[UploadedFile]] = None,
):
    actor = request.auth
    instance = selectors.access_instance(actor, instance_id)
    if not policies.can_comment(actor, instance):
        raise ApprovalPermissionDenied(_("You may not comment on this approval."))
    files = files or []
    if len(files) > MAX_FILES:
        raise ValidationFailed(errors=[{"field": "files", "message": _("At most %(max)d files.") % {"max": MAX_FILES}}])
    uploads = [inspect_upload(f.name or "file", f, field="files") for f in files]
    action = services.comment_approval(actor=actor, instance_id=instance.id, comment=comment, attachments=uploads)
    return 201, _action_out(action)


# ------------------------------------------------------------------------------------------ tasks


@router.get(
    "/tasks",
    response={200: TaskPage, 422: ProblemSchema},
    summary="My approval tasks, box by box, with counts",
    description="Who: everyone signed in, for their own tasks. Boxes: pending (waiting for you), done (you "
    "decided), cc (copied to you), delegated (given to a deputy on your behalf, or to you on someone's).",
)
def list_tasks(request: HttpRequest, filters: Query[TaskFilterIn]):
    actor = request.auth
    qs = selectors.list_tasks(
        actor=actor,
        filters=selectors.TaskFilters(
            box=filters.box, q=filters.q, subject_type=filters.subject_type, overdue=filters.overdue
        ),
    ).select_related("instance__definition")
    subjects = _Subjects()

    def render(task):
        instance = task.instance
        return {
            **_task_out(actor, task, instance),
            "instance": {
                "id": instance.id,
                "state": instance.state,
                "subject": subjects.of(instance.subject_type, instance.subject_id, instance.subject_repr),
                "initiator": _user(instance.initiator),
            },
        }

    page = _page(qs, filters.page, filters.page_size, render)
    return {**page, "counts": selectors.task_counts(actor=actor)}


@router.post(
    "/tasks/bulk",
    response={200: BulkOut, **ERRORS},
    summary="Approve or reject many of your tasks; one result per task (one failure does not stop the others)",
    description="A bulk rejection needs a comment. Auditors decide nothing (403).",
)
def bulk(request: HttpRequest, payload: BulkIn):
    actor = request.auth
    if accounts_selectors.is_read_only(actor):
        raise ApprovalPermissionDenied(_("Auditors decide no approvals."))
    results = services.bulk_decide(
        actor=actor, task_ids=[str(t) for t in payload.task_ids], decision=payload.decision, comment=payload.comment
    )
    results = [{**r, "detail": str(r["detail"])} for r in results]
    succeeded = sum(1 for r in results if r["ok"])
    return {"succeeded": succeeded, "failed": len(results) - succeeded, "results": results}


@router.get(
    "/tasks/{task_id}",
    response={200: TaskDetailOut, 404: ProblemSchema, 422: ProblemSchema},
    summary="A task with its approval, and why it came to this user",
    description="Who: its assignee, and anyone who may see its order (others 404).",
)
def get_task(request: HttpRequest, task_id: uuid.UUID):
    return task_detail(request.auth, selectors.access_task(request.auth, task_id))


@router.post(
    "/tasks/{task_id}/read",
    response={200: TaskDetailOut, **ERRORS},
    summary="Mark a copy (CC) sent to you as read",
    description="Who: the CC's recipient (others who see it 403, the rest 404); a task that is not a CC 409. "
    "Marking it again changes nothing.",
)
def read_cc(request: HttpRequest, task_id: uuid.UUID):
    task = services.read_cc(actor=request.auth, task_id=task_id)
    return task_detail(request.auth, selectors.access_task(request.auth, task.id))


@router.post(
    "/tasks/{task_id}/approve",
    response={200: TaskDetailOut, **ERRORS},
    summary="Approve your task",
    description=WHO_HOLDS_THE_TASK + " `changes` edits the object fields the node lets approvers edit.",
)
def approve(request: HttpRequest, task_id: uuid.UUID, payload: ApproveIn):
    actor = request.auth
    _check_task_version(actor, selectors.access_task(actor, task_id), payload.version)
    task = services.decide_task(
        actor=actor, task_id=task_id, decision="approve", comment=payload.comment, changes=payload.changes
    )
    return task_detail(actor, selectors.access_task(actor, task.id))


@router.post(
    "/tasks/{task_id}/reject",
    response={200: TaskDetailOut, **ERRORS},
    summary="Reject your task: the approval ends, or returns to an earlier node or to the initiator",
    description=WHO_HOLDS_THE_TASK,
)
def reject(request: HttpRequest, task_id: uuid.UUID, payload: RejectIn):
    actor = request.auth
    _check_task_version(actor, selectors.access_task(actor, task_id), payload.version)
    task = services.decide_task(
        actor=actor, task_id=task_id, decision="reject", comment=payload.comment, return_to=payload.return_to or None
    )
    return task_detail(actor, selectors.access_task(actor, task.id))


@router.post(
    "/tasks/{task_id}/transfer",
    response={200: TaskDetailOut, **ERRORS},
    summary="Hand your task to another user (转交); answers their new task",
    description=WHO_HOLDS_THE_TASK,
)
def transfer(request: HttpRequest, task_id: uuid.UUID, payload: TransferIn):
    actor = request.auth
    selectors.access_task(actor, task_id)  # 404 before anything about the other user
    new = services.transfer_task(
        actor=actor, task_id=task_id, to_user=_active_user(payload.to_user_id, "to_user_id"), comment=payload.comment
    )
    return task_detail(actor, selectors.access_task(actor, new.id))


@router.post(
    "/tasks/{task_id}/add-signer",
    response={200: TaskDetailOut, **ERRORS},
    summary="Add a signer to your task (加签): before you, after you, or alongside; answers their task",
    description=WHO_HOLDS_THE_TASK,
)
def add_signer(request: HttpRequest, task_id: uuid.UUID, payload: AddSignerIn):
    actor = request.auth
    selectors.access_task(actor, task_id)
    new = services.add_signer(
        actor=actor,
        task_id=task_id,
        user=_active_user(payload.user_id, "user_id"),
        position=payload.position,
        comment=payload.comment,
    )
    return task_detail(actor, selectors.access_task(actor, new.id))


# ------------------------------------------------------------------------------------------ delegations


def _delegation_out(d) -> dict:
    today = timezone.localdate()
    return {
        "id": d.id,
        "user": _user(d.user),
        "deputy": _user(d.deputy),
        "starts_on": d.starts_on,
        "ends_on": d.ends_on,
        "reason": d.reason,
        "active": d.revoked_at is None and d.starts_on <= today <= d.ends_on,
        "revoked_at": d.revoked_at,
        "created_at": d.created_at,
    }


@router.get(
    "/delegations",
    response={200: list[DelegationOut], 422: ProblemSchema},
    summary="Delegations you gave or hold as deputy (administrators: everyone's)",
    description="Who: everyone signed in.",
)
def list_delegations(request: HttpRequest, filters: Query[DelegationFilterIn]):
    qs = accounts_selectors.list_delegations(actor=request.auth, include_ended=filters.include_ended)
    return [_delegation_out(d) for d in qs]


@router.post(
    "/delegations",
    response={201: DelegationOut, **ERRORS},
    summary="Name a deputy for a period: new tasks go to them, marked on your behalf",
    description="`user_id` sets someone else's delegation (administrators only). Auditors delegate nothing (403).",
)
def create_delegation(request: HttpRequest, payload: DelegationIn):
    actor = request.auth
    if accounts_selectors.is_read_only(actor):
        raise ApprovalPermissionDenied(_("Auditors decide no approvals and need no deputy."))
    if (
        payload.user_id is not None
        and payload.user_id != actor.pk
        and not accounts_selectors.has_role(actor, Role.ADMIN)
    ):
        raise ApprovalPermissionDenied(_("Only an administrator may set another user's delegation."))
    user = actor if payload.user_id in (None, actor.pk) else _active_user(payload.user_id, "user_id")
    delegation = accounts_services.set_delegation(
        actor=actor,
        user=user,
        deputy=_active_user(payload.deputy_id, "deputy_id"),
        starts_on=payload.starts_on,
        ends_on=payload.ends_on,
        reason=payload.reason,
    )
    return 201, _delegation_out(delegation)


@router.delete(
    "/delegations/{delegation_id}",
    response={204: None, 404: ProblemSchema, 422: ProblemSchema},
    summary="End a delegation now (its user or an administrator); tasks already given stay with the deputy",
)
def end_delegation(request: HttpRequest, delegation_id: uuid.UUID):
    accounts_services.end_delegation(actor=request.auth, delegation_id=delegation_id)
    return 204, None
