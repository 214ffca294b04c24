"""The walk of a compiled flow: entering elements, resolving approvers, creating tasks, deciding
steps, completing instances. Called only by approvals.services, inside its transaction, with the
instance row locked. Also the dry walk (`plan_route`) used by simulation, which writes nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext as _

from eoms.accounts.roles import Role
from eoms.accounts.selectors import managers_of, resolve_deputy, users_with_role
from eoms.core.events import emit
from eoms.core.workcalendar import add_working_hours

from . import events
from .definition import Document, Element, Flow, compile_flow, describe_condition, evaluate, parse_document
from .models import (
    ActionKind,
    ApprovalAction,
    ApprovalDefinition,
    ApprovalInstance,
    ApprovalStep,
    ApprovalTask,
    InstanceState,
    StepState,
    TaskKind,
    TaskState,
)
from .subjects import Subject, get_adapter

__all__ = ["Context", "flow_of", "document_of", "resolve_approvers", "plan_route", "enter", "settle_step"]

OPEN_TASK_STATES = (TaskState.PENDING, TaskState.WAITING)


def document_of(definition: ApprovalDefinition) -> Document:
    return _flow_cache(str(definition.pk), definition.version, definition)[0]


def flow_of(definition: ApprovalDefinition) -> Flow:
    return _flow_cache(str(definition.pk), definition.version, definition)[1]


_CACHE: dict[tuple[str, int], tuple[Document, Flow]] = {}


def _flow_cache(key: str, version: int, definition) -> tuple[Document, Flow]:
    """Published revisions never change, so their compiled flow is kept per (id, version)."""
    hit = _CACHE.get((key, version))
    if hit is None:
        doc = parse_document(definition.document)
        hit = (doc, compile_flow(doc))
        if len(_CACHE) > 512:
            _CACHE.clear()
        _CACHE[(key, version)] = hit
    return hit


@dataclass
class Context:
    """Everything one service call needs while walking: who acts (None: the system), the instance,
    its flow and subject, and the moment."""

    actor: object
    instance: ApprovalInstance
    subject: Subject
    now: datetime = field(default_factory=timezone.now)
    on_behalf_of: object = None
    comment: str = ""

    @functools.cached_property
    def adapter(self):
        return get_adapter(self.instance.subject_type)

    @functools.cached_property
    def flow(self) -> Flow:
        return flow_of(self.instance.definition)

    @functools.cached_property
    def document(self) -> Document:
        return document_of(self.instance.definition)

    @functools.cached_property
    def fields(self) -> dict:
        return {f.name: f for f in self.adapter.fields()}

    def action(self, kind: str, *, task=None, node=None, comment: str = "", detail: dict | None = None):
        return ApprovalAction.objects.create(
            instance=self.instance,
            task=task,
            kind=kind,
            actor=self.actor,
            on_behalf_of=self.on_behalf_of,
            node_id=getattr(node, "id", "") or "",
            node_name=getattr(node, "name", "") or "",
            comment=comment,
            detail=detail or {},
            at=self.now,
        )

    def emit(self, event_cls, *, action: str | None = None, changes: dict | None = None, **fields):
        return emit(
            event_cls(
                instance_id=self.instance.pk,
                subject_type=self.instance.subject_type,
                subject_id=self.instance.subject_id,
                subject_repr=self.instance.subject_repr,
                **fields,
            ),
            actor=self.actor,
            action=action,
            object_repr=self.instance.subject_repr,
            changes=changes,
        )


# --- approvers ---------------------------------------------------------------------------------


@dataclass
class Candidate:
    user: object
    reason: str
    on_behalf_of: object = None


def _admins():
    return list(users_with_role(Role.ADMIN).order_by("username"))


def resolve_approvers(node, *, subject: Subject, initiator, picked: dict, on) -> tuple[list[Candidate], str]:
    """The users who decide `node` for this subject, in order, after the self-approval guard and
    delegation, with why each was chosen; and a note when the fallback (`if_empty`) applied.
    Sequence is implied for a chain of managers (连续多级主管)."""
    User = get_user_model()
    src = node.approvers if node.type == "approval" else node.recipients
    found: list[Candidate] = []
    if src.source == "users":
        by_id = {str(u.pk): u for u in User.objects.filter(pk__in=src.users, is_active=True)}
        found = [Candidate(by_id[i], _("named in the flow")) for i in src.users if i in by_id]
    elif src.source == "role":
        found = [
            Candidate(
                u, _("has the role %(role)s") % {"role": Role(src.role).label if src.role in Role.values else src.role}
            )
            for u in users_with_role(src.role).order_by("username")
        ]
    elif src.source == "project_role":
        adapter = get_adapter(subject.type)
        label = _("project manager") if src.project_role == "pm" else _("project engineer")
        found = [
            Candidate(u, _("%(role)s of %(subject)s") % {"role": label, "subject": subject.repr})
            for u in adapter.project_role_users(subject, src.project_role)
        ]
    elif src.source == "manager":
        chain = managers_of(initiator, src.levels)
        if src.chain:
            found = [
                Candidate(u, _("manager level %(n)s of %(user)s") % {"n": i + 1, "user": initiator})
                for i, u in enumerate(chain)
            ]
        elif chain:
            found = [Candidate(chain[-1], _("manager level %(n)s of %(user)s") % {"n": len(chain), "user": initiator})]
    elif src.source == "picked":
        user_id = (picked or {}).get(node.id)
        user = User.objects.filter(pk=user_id, is_active=True).first() if user_id else None
        if user:
            found = [Candidate(user, _("picked by %(user)s at submission") % {"user": initiator})]
    elif src.source == "field":
        adapter = get_adapter(subject.type)
        user = adapter.user_field(subject, src.field)
        if user is not None and user.is_active:
            found = [Candidate(user, _("held in the field %(field)s") % {"field": src.field})]
    unique: list[Candidate] = []
    for c in found:
        if all(c.user.pk != u.user.pk for u in unique):
            unique.append(c)
    note = ""
    if node.type == "approval" and not node.allow_self_approval:
        without = [c for c in unique if c.user.pk != initiator.pk]
        if len(without) < len(unique) and not without:
            managers = managers_of(initiator, 1)
            without = [
                Candidate(
                    m, _("%(user)s may not approve their own request; their manager decides") % {"user": initiator}
                )
                for m in managers
            ]
        unique = without
    if node.type == "approval" and not unique:
        if node.if_empty == "admins":
            unique = [Candidate(u, _("no approver was found; administrators decide")) for u in _admins()]
            if not node.allow_self_approval:
                unique = [c for c in unique if c.user.pk != initiator.pk]
            note = "admins"
        elif node.if_empty == "approve":
            note = "approve"
    # Delegation: a task meant for an absent user goes to the end of their chain of deputies.
    delegated: list[Candidate] = []
    for c in unique:
        deputy, chain = resolve_deputy(c.user, on=on)
        if deputy.pk != c.user.pk and not (
            node.type == "approval" and not node.allow_self_approval and deputy.pk == initiator.pk
        ):
            c = Candidate(deputy, c.reason, on_behalf_of=c.user)
        if all(c.user.pk != d.user.pk for d in delegated):
            delegated.append(c)
    return delegated, note


# --- the dry walk --------------------------------------------------------------------------------


def plan_route(flow: Flow, *, subject: Subject, initiator, picked: dict, fields: dict, on) -> list[dict]:
    """Who would approve this subject and in what order, without writing anything: a list of
    stages {node_id, name, kind, mode, approvers: [{user, reason, on_behalf_of}], reason, parallel}."""
    stages: list[dict] = []

    def walk(element_id: str, reason: str, parallel: str) -> None:
        while element_id and element_id != "end":
            element: Element = flow.elements[element_id]
            if element.kind in ("approval", "cc"):
                node = element.node
                candidates, note = resolve_approvers(node, subject=subject, initiator=initiator, picked=picked, on=on)
                stages.append(
                    {
                        "node_id": node.id,
                        "name": node.name,
                        "kind": element.kind,
                        "mode": "sequence" if getattr(node.approvers, "chain", False) else getattr(node, "mode", ""),
                        "approvers": [
                            {"user": c.user, "reason": c.reason, "on_behalf_of": c.on_behalf_of} for c in candidates
                        ],
                        "reason": reason,
                        "parallel": parallel,
                        "note": note,
                    }
                )
                reason = ""
                element_id = element.next
            elif element.kind == "split":
                branch, first = choose_branch(element, subject.facts, fields)
                reason = f"{describe_condition(branch.when, fields)} → {branch.name}"
                element_id = first
            elif element.kind == "fork":
                for branch, first in element.outgoing:
                    walk_branch(first, element.join, f"{element.node.name}: {branch.name}")
                element_id = flow.elements[element.join].next
            else:  # join of a split
                element_id = element.next

    def walk_branch(first: str, join: str, label: str) -> None:
        # A parallel branch runs up to its join; stages inside it are marked with the branch.
        element_id = first
        while element_id != join:
            element = flow.elements[element_id]
            if element.kind == "fork":
                for branch, inner in element.outgoing:
                    walk_branch(inner, element.join, f"{label} / {branch.name}")
                element_id = flow.elements[element.join].next
            elif element.kind == "split":
                branch, nxt = choose_branch(element, subject.facts, fields)
                element_id = nxt
            elif element.kind == "join":
                element_id = element.next
            else:
                node = element.node
                candidates, note = resolve_approvers(node, subject=subject, initiator=initiator, picked=picked, on=on)
                stages.append(
                    {
                        "node_id": node.id,
                        "name": node.name,
                        "kind": element.kind,
                        "mode": getattr(node, "mode", ""),
                        "approvers": [
                            {"user": c.user, "reason": c.reason, "on_behalf_of": c.on_behalf_of} for c in candidates
                        ],
                        "reason": "",
                        "parallel": label,
                        "note": note,
                    }
                )
                element_id = element.next

    walk(flow.elements["start"].next, "", "")
    return stages


def choose_branch(element: Element, facts: dict, fields: dict):
    """The first branch whose condition holds, else the default branch."""
    default = None
    for branch, first in element.outgoing:
        if branch.default:
            default = (branch, first)
            continue
        if evaluate(branch.when, facts, fields):
            return branch, first
    return default if default else element.outgoing[-1]


# --- the live walk ---------------------------------------------------------------------------------


def enter(ctx: Context, element_id: str, *, reason: str = "") -> None:
    """Move the flow into `element_id` and on, until it waits for people or ends."""
    instance = ctx.instance
    while instance.state == InstanceState.RUNNING:
        element = ctx.flow.elements[element_id]
        if element.kind == "end":
            complete(ctx, "approved")
            return
        if element.kind == "approval":
            if _activate_approval(ctx, element, reason):
                return  # waiting for decisions
            element_id, reason = element.next, ""
        elif element.kind == "cc":
            _send_cc(ctx, element, reason)
            element_id, reason = element.next, ""
        elif element.kind == "split":
            branch, first = choose_branch(element, ctx.subject.facts, ctx.fields)
            why = f"{describe_condition(branch.when, ctx.fields)} → {branch.name}"
            ApprovalStep.objects.create(
                instance=instance,
                node_id=element.id,
                node_name=element.node.name,
                kind="split",
                round=instance.round,
                state=StepState.PASSED,
                reason=why[:300],
                branch_id=branch.id,
                started_at=ctx.now,
                finished_at=ctx.now,
            )
            element_id, reason = first, why
        elif element.kind == "fork":
            ApprovalStep.objects.create(
                instance=instance,
                node_id=element.id,
                node_name=element.node.name,
                kind="fork",
                round=instance.round,
                state=StepState.PASSED,
                started_at=ctx.now,
                finished_at=ctx.now,
            )
            for _branch, first in element.outgoing:
                enter(ctx, first, reason=reason)
                if instance.state != InstanceState.RUNNING:
                    return
            return
        elif element.kind == "join":
            fork = ctx.flow.elements[element.join]
            if fork.kind == "fork":
                ApprovalStep.objects.create(
                    instance=instance,
                    node_id=element.id,
                    node_name=element.node.name,
                    kind="join",
                    round=instance.round,
                    state=StepState.PASSED,
                    started_at=ctx.now,
                    finished_at=ctx.now,
                )
                arrived = ApprovalStep.objects.filter(
                    instance=instance, node_id=element.id, round=instance.round, kind="join"
                ).count()
                if arrived < fork.branches:
                    return  # the other branches are still running
            element_id = element.next
        else:  # start
            element_id = element.next


def _due(ctx: Context, hours) -> datetime | None:
    return add_working_hours(ctx.now, hours) if hours else None


def _activate_approval(ctx: Context, element: Element, reason: str) -> bool:
    """Create the step and tasks of an approval node. False when the node passes at once (no
    approvers and the flow says to approve automatically)."""
    node = element.node
    instance = ctx.instance
    on = timezone.localdate(ctx.now)
    candidates, note = resolve_approvers(
        node, subject=ctx.subject, initiator=instance.initiator, picked=instance.picked, on=on
    )
    sequential = node.mode == "sequence" or (node.approvers.source == "manager" and node.approvers.chain)
    from .definition import quorum_needed

    step = ApprovalStep.objects.create(
        instance=instance,
        node_id=node.id,
        node_name=node.name,
        kind="approval",
        round=instance.round,
        state=StepState.ACTIVE,
        mode="sequence" if sequential else node.mode,
        needed=quorum_needed(node, len(candidates)) if not sequential else len(candidates),
        reason=reason[:300],
        started_at=ctx.now,
        due_at=_due(ctx, node.sla_hours),
        remind_at=_due(ctx, node.remind_after_hours),
    )
    if not candidates:
        step.state = StepState.SKIPPED
        step.finished_at = ctx.now
        step.save(update_fields=["state", "finished_at"])
        ctx.action(
            ActionKind.AUTO_APPROVE,
            node=node,
            detail={"rule": "if_empty=approve", "reason": _("No approver was found; the flow approves this node.")},
        )
        return False
    previous = None
    for position, candidate in enumerate(candidates):
        task = ApprovalTask.objects.create(
            instance=instance,
            step=step,
            kind=TaskKind.APPROVER,
            state=TaskState.WAITING if (sequential and previous is not None) else TaskState.PENDING,
            assignee=candidate.user,
            on_behalf_of=candidate.on_behalf_of,
            after=previous if sequential else None,
            position=position,
            reason=candidate.reason[:300],
        )
        if task.state == TaskState.PENDING:
            task_created(ctx, task, node)
        previous = task
    return True


def task_created(ctx: Context, task: ApprovalTask, node) -> None:
    hook = getattr(ctx.adapter, "on_task_created", None)
    if hook is not None:
        hook(ctx.subject, task)
    ctx.emit(
        events.ApprovalTaskCreated,
        task_id=task.pk,
        node_id=task.step.node_id,
        assignee_id=task.assignee_id,
        on_behalf_of_id=task.on_behalf_of_id,
        due_at=task.step.due_at.isoformat() if task.step.due_at else None,
        changes={
            "node": task.step.node_name,
            "assignee": str(task.assignee),
            "on_behalf_of": str(task.on_behalf_of) if task.on_behalf_of_id else None,
            "reason": task.reason,
        },
    )


def _send_cc(ctx: Context, element: Element, reason: str) -> None:
    node = element.node
    instance = ctx.instance
    candidates, _note = resolve_approvers(
        node, subject=ctx.subject, initiator=instance.initiator, picked=instance.picked, on=timezone.localdate(ctx.now)
    )
    step = ApprovalStep.objects.create(
        instance=instance,
        node_id=node.id,
        node_name=node.name,
        kind="cc",
        round=instance.round,
        state=StepState.PASSED,
        reason=reason[:300],
        started_at=ctx.now,
        finished_at=ctx.now,
    )
    for position, c in enumerate(candidates):
        ApprovalTask.objects.create(
            instance=instance,
            step=step,
            kind=TaskKind.CC,
            state=TaskState.CC,
            assignee=c.user,
            on_behalf_of=c.on_behalf_of,
            position=position,
            reason=c.reason[:300],
        )
    ctx.action(ActionKind.CC, node=node, detail={"users": [str(c.user) for c in candidates]})
    ctx.emit(
        events.ApprovalCcSent,
        node_id=node.id,
        user_ids=tuple(str(c.user.pk) for c in candidates),
        changes={"node": node.name, "users": [str(c.user) for c in candidates]},
    )


def step_outcome(step: ApprovalStep) -> str | None:
    """approved, rejected, or None while undecided, from the step's tasks and its mode."""
    tasks = list(step.tasks.exclude(state=TaskState.TRANSFERRED).values_list("kind", "state"))
    base = [s for k, s in tasks if k == TaskKind.APPROVER]
    added = [s for k, s in tasks if k == TaskKind.ADDED]
    base_live = [s for s in base if s != TaskState.CANCELLED]
    approvals = base.count(TaskState.APPROVED)
    rejections = base.count(TaskState.REJECTED)
    if TaskState.REJECTED in added:
        return "rejected"
    if step.mode == "quorum":
        if rejections > len(base_live) - step.needed:
            return "rejected"
    elif rejections:
        return "rejected"
    if approvals >= step.needed and all(s == TaskState.APPROVED for s in added if s != TaskState.CANCELLED):
        return "approved"
    return None


def close_open_tasks(step: ApprovalStep, now) -> None:
    step.tasks.filter(state__in=OPEN_TASK_STATES).update(state=TaskState.CANCELLED, decided_at=now)


def settle_step(ctx: Context, step: ApprovalStep) -> None:
    """After a decision: finish the step if its mode is satisfied (or can no longer be) and move on."""
    outcome = step_outcome(step)
    if outcome is None:
        return
    step.state = StepState.APPROVED if outcome == "approved" else StepState.REJECTED
    step.finished_at = ctx.now
    step.save(update_fields=["state", "finished_at"])
    close_open_tasks(step, ctx.now)
    if outcome == "approved":
        enter(ctx, ctx.flow.elements[step.node_id].next)
    else:
        complete(ctx, "rejected")


def cancel_active(ctx: Context) -> None:
    steps = ctx.instance.steps.filter(state=StepState.ACTIVE)
    for step in steps:
        close_open_tasks(step, ctx.now)
    steps.update(state=StepState.CANCELLED, finished_at=ctx.now)


def complete(ctx: Context, outcome: str, *, comment: str = "") -> None:
    """End the instance approved or rejected, and tell the subject."""
    instance = ctx.instance
    cancel_active(ctx)
    instance.state = InstanceState.APPROVED if outcome == "approved" else InstanceState.REJECTED
    instance.finished_at = ctx.now
    instance.save(update_fields=["state", "finished_at", "updated_at", "decided"])
    ctx.action(ActionKind.COMPLETE, detail={"outcome": outcome})
    ctx.emit(events.ApprovalCompleted, outcome=outcome, changes={"outcome": outcome})
    ctx.adapter.on_outcome(
        actor=ctx.actor, subject=ctx.subject, outcome=outcome, comment=comment or ctx.comment, instance=instance
    )
