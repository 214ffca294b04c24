"""The walk of a compiled flow: entering elements, resolving approvers, creating tasks, deciding
steps, completing instances. Called only by approvals.services, inside its transaction, with the
instance row locked. Also the dry walk (`plan_route`) used by simulation, which writes nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from eoms.accounts.roles import Role
from eoms.accounts.selectors import approvers_with_deputies, is_read_only, managers_of, resolve_deputy
from eoms.core.events import emit
from eoms.core.ids import valid_uuids
from eoms.core.rows import Insert, Update, Values
from eoms.core.workcalendar import add_working_hours

from . import events
from .definition import (
    Condition,
    Document,
    Element,
    Flow,
    compile_flow,
    describe_condition,
    evaluate,
    parse_document,
    quorum_needed,
    walk_nodes,
)
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
from .subjects import FieldSpec, Subject, get_adapter

__all__ = [
    "Context",
    "flow_of",
    "document_of",
    "resolve_approvers",
    "plan_route",
    "route_nodes",
    "enter",
    "settle_step",
    "deputy_of",
    "enclosing_parallel",
    "return_targets",
    "step_outcome",
    "condition_of",
    "field_types",
]

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


_CONDITIONS: dict[tuple[str, int], Condition] = {}


def condition_of(definition: ApprovalDefinition) -> Condition | None:
    """When the definition applies (None: it names no condition), parsed once per (id, version) as
    its flow is: every submission tests the published flows' conditions."""
    if not definition.applies_when:
        return None
    key = (str(definition.pk), definition.version)
    hit = _CONDITIONS.get(key)
    if hit is None:
        if len(_CONDITIONS) > 512:
            _CONDITIONS.clear()
        hit = _CONDITIONS[key] = Condition.model_validate(definition.applies_when)
    return hit


_TYPES: dict[object, dict[str, FieldSpec]] = {}


def field_types(adapter) -> dict[str, FieldSpec]:
    """The adapter's fields as evaluate needs them (name and type, no choices), asked of the adapter
    once per process: its fields and their types are code, while the choices of some are read from
    the database, and only describing a condition needs them (adapter.fields())."""
    types = _TYPES.get(adapter)
    if types is None:
        types = _TYPES[adapter] = {f.name: FieldSpec(f.name, f.label, f.type) for f in adapter.fields()}
    return types


@dataclass
class Context:
    """Everything one service call needs while walking: who acts (None: the system), the instance,
    its flow and subject, and the moment."""

    actor: object
    instance: ApprovalInstance
    # Loaded on first use: a decision that only moves to the next named approver never needs it.
    loaded_subject: Subject | None = None
    now: datetime = field(default_factory=timezone.now)
    on_behalf_of: object = None
    comment: str = ""
    # The last node this walk passed was passed by a rule of the flow (no approver, a timeout):
    # reaching the end then is the system's completion, not the person who set the walk off.
    passed_by_system: bool = False

    @property
    def subject(self) -> Subject:
        if self.loaded_subject is None:
            self.loaded_subject = self.adapter.load(self.instance.subject_id)
        return self.loaded_subject

    @subject.setter
    def subject(self, value: Subject) -> None:
        self.loaded_subject = value

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

    def action(
        self, kind: str, *, task=None, node=None, comment: str = "", detail: dict | None = None, system: bool = False
    ):
        """One entry of the timeline. `system`: done by a rule of the flow (an automatic approval,
        a timeout), recorded without an actor whoever's action set it off."""
        return _insert_action.save(
            ApprovalAction(
                instance=self.instance,
                task=task,
                kind=kind,
                actor=None if system else self.actor,
                on_behalf_of=None if system else self.on_behalf_of,
                node_id=getattr(node, "id", "") or "",
                node_name=getattr(node, "name", "") or "",
                comment=comment,
                detail=detail or {},
                at=self.now,
            )
        )

    def emit(
        self,
        event_cls,
        *,
        audit_action: str | None = None,
        changes: dict | None = None,
        system: bool = False,
        **fields,
    ):
        """Publish an event of this instance (audit entry + outbox message). `audit_action` names the
        audit entry when it differs from the event type (an event may have a field called action);
        `system`: the flow's rule did it, audited without an actor."""
        return emit(
            event_cls(
                instance_id=self.instance.pk,
                subject_type=self.instance.subject_type,
                subject_id=self.instance.subject_id,
                subject_repr=self.instance.subject_repr,
                **fields,
            ),
            actor=None if system else self.actor,
            action=audit_action,
            object_repr=self.instance.subject_repr,
            changes=changes,
        )


# The rows every decision writes, with prepared statements (eoms.core.rows).
_insert_action = Insert(ApprovalAction)
_insert_step = Insert(ApprovalStep)
_insert_task = Insert(ApprovalTask)
_finish_step = Update(ApprovalStep, set=("state", "finished_at"), where=("id",))
_active_steps = Values(ApprovalStep, fields=("id",), where=("instance", "state"))
_close_tasks = Update(ApprovalTask, set=("state", "decided_at"), where=("step__in", "state__in"))
_cancel_steps = Update(ApprovalStep, set=("state", "finished_at"), where=("id__in",))
_finish_instance = Update(ApprovalInstance, set=("state", "finished_at", "updated_at", "decided"), where=("id",))


# --- approvers ---------------------------------------------------------------------------------


@dataclass
class Candidate:
    user: object
    reason: str
    on_behalf_of: object = None


def _approvers(on, **which) -> dict:
    """{user id: Approver} (accounts.selectors.approvers_with_deputies): each user with their
    read-only flag and first deputy, in one statement."""
    return {a.user.pk: a for a in approvers_with_deputies(on=on, **which)}


def _found(src, node, *, subject: Subject, initiator, picked: dict, on) -> tuple[list[Candidate], dict]:
    """The users an approver source names, in order, before any guard or delegation; and what is
    known of them as approvers ({user id: Approver}) where the statement that found them read it
    too (named users, a role, a pick). `subject` may be a callable answering it: only the sources
    that need the object load it."""
    if callable(subject) and src.source in ("project_role", "field"):
        subject = subject()
    if src.source in ("users", "picked"):
        ids = valid_uuids(src.users if src.source == "users" else [(picked or {}).get(node.id)])
        known = _approvers(on, user_ids=ids) if ids else {}
        by_id = {str(pk): a.user for pk, a in known.items()}
        reason = (
            _("named in the flow")
            if src.source == "users"
            else _("picked by %(user)s at submission") % {"user": initiator}
        )
        return [Candidate(by_id[i], reason) for i in ids if i in by_id], known
    if src.source == "role":
        label = Role(src.role).label if src.role in Role.values else src.role
        known = _approvers(on, role=src.role)
        return [Candidate(a.user, _("has the role %(role)s") % {"role": label}) for a in known.values()], known
    if src.source == "project_role":
        adapter = get_adapter(subject.type)
        label = _("project manager") if src.project_role == "pm" else _("project engineer")
        return [
            Candidate(u, _("%(role)s of %(subject)s") % {"role": label, "subject": subject.repr})
            for u in adapter.project_role_users(subject, src.project_role)
        ], {}
    if src.source == "manager":
        chain = managers_of(initiator, src.levels)
        if src.chain:
            return [
                Candidate(u, _("manager level %(n)s of %(user)s") % {"n": i + 1, "user": initiator})
                for i, u in enumerate(chain)
            ], {}
        if chain:
            # Only the Nth manager; a shorter tree gives its top manager.
            return [
                Candidate(chain[-1], _("manager level %(n)s of %(user)s") % {"n": len(chain), "user": initiator})
            ], {}
        return [], {}
    if src.source == "field":
        user = get_adapter(subject.type).user_field(subject, src.field)
        if user is not None and user.is_active:
            return [Candidate(user, _("held in the field %(field)s") % {"field": src.field})], {}
    return [], {}


def _learn(known: dict, candidates: list[Candidate], on) -> None:
    """Add to `known` what it lacks of these candidates as approvers (one statement, none when
    nothing is missing)."""
    missing = [c.user.pk for c in candidates if c.user.pk not in known]
    if missing:
        known.update(_approvers(on, user_ids=missing, active_only=False))


def resolve_approvers(node, *, subject: Subject, initiator, picked: dict, on) -> tuple[list[Candidate], str]:
    """The users who decide `node` for this subject, in order, after the self-approval guard and
    delegation, with why each was chosen; and a note of what applied when the source named nobody:
    "admins" (administrators decide), "approve" (the flow approves the node), or "none" (nobody at
    all can decide it). Sequence is implied for a chain of managers (连续多级主管).

    Invariants for an approval node without allow_self_approval: the initiator is never among the
    answer (their place goes to their manager), and no task is delegated to the initiator.

    Who the users are, whether they are read-only (auditors) and who their deputies are is read
    in one statement for the named users, a role or a pick (two for the other sources); a chain of
    deputies longer than one link is walked further (deputy_of)."""
    src = node.approvers if node.type == "approval" else node.recipients
    found, known = _found(src, node, subject=subject, initiator=initiator, picked=picked, on=on)
    unique: list[Candidate] = []
    for c in found:
        if all(c.user.pk != u.user.pk for u in unique):
            unique.append(c)
    if node.type == "approval":
        # An auditor (read-only) is copied but never asked to decide: they could not.
        _learn(known, unique, on)
        unique = [c for c in unique if not known[c.user.pk].read_only]
    guarded = node.type == "approval" and not node.allow_self_approval
    if guarded and any(c.user.pk == initiator.pk for c in unique):
        # The initiator never approves their own request: their manager decides in their place.
        managers = [m for m in managers_of(initiator, 1) if all(m.pk != c.user.pk for c in unique)]
        replaced: list[Candidate] = []
        for c in unique:
            if c.user.pk != initiator.pk:
                replaced.append(c)
            else:
                replaced.extend(
                    Candidate(
                        m, _("%(user)s may not approve their own request; their manager decides") % {"user": initiator}
                    )
                    for m in managers
                )
        unique = replaced
    note = ""
    if node.type == "approval" and not unique:
        if node.if_empty == "approve":
            note = "approve"
        else:
            # "admins", and also a node published without a fallback whose approvers have gone since
            # (a named user deactivated, a role emptied, a pick missing): a person decides, never
            # an automatic approval nobody asked for.
            admins = _approvers(on, role=Role.ADMIN)
            known.update(admins)
            unique = [
                Candidate(a.user, _("no approver was found; administrators decide"))
                for a in admins.values()
                if not a.read_only
            ]
            if guarded:
                unique = [c for c in unique if c.user.pk != initiator.pk]
            note = "admins" if unique else "none"
    _learn(known, unique, on)
    delegated: list[Candidate] = []
    for c in unique:
        deputy = _deputy(c.user, known[c.user.pk], initiator=initiator if guarded else None, on=on)
        if deputy.pk != c.user.pk:
            c = Candidate(deputy, c.reason, on_behalf_of=c.user)
        if all(c.user.pk != d.user.pk for d in delegated):
            delegated.append(c)
    return delegated, note


def _deputy(user, approver, *, initiator, on):
    """deputy_of(user, initiator=initiator, on=on) from what `approver` (user's Approver) holds:
    the first link of the chain is known; a chain going past it is walked."""
    deputy = approver.deputy
    if deputy is None or deputy.pk == user.pk:
        return user
    if approver.deputy_delegates:
        return deputy_of(user, initiator=initiator, on=on)
    if (initiator is not None and deputy.pk == initiator.pk) or approver.deputy_read_only:
        return user
    return deputy


def deputy_of(user, *, initiator=None, on):
    """Who receives a task meant for `user` on date `on`: the end of the user's chain of deputies
    (A→B→C gives C). A chain that reaches `initiator` stops before them (a delegation never makes
    the initiator approve their own request), and so does one reaching a read-only user."""
    _deputy, chain = resolve_deputy(user, on=on)
    for i, deputy in enumerate(chain[1:], start=1):
        if (initiator is not None and deputy.pk == initiator.pk) or is_read_only(deputy):
            chain = chain[:i]
            break
    return chain[-1]


# --- the dry walk --------------------------------------------------------------------------------


def plan_route(flow: Flow, *, subject: Subject, initiator, picked: dict, fields: dict, on) -> list[dict]:
    """Who would approve this subject and in what order, without writing anything: a list of
    stages {node_id, name, kind, mode, approvers: [{user, reason, on_behalf_of}], reason, parallel,
    note}. `reason` says why the route came to the stage ("contract amount ≥ 500,000 → GM");
    `parallel` names the parallel branch a stage runs in ("Checks: Finance"), empty outside one."""
    stages: list[dict] = []

    def stage(node, kind: str, reason: str, parallel: str) -> None:
        candidates, note = resolve_approvers(node, subject=subject, initiator=initiator, picked=picked, on=on)
        chain = kind == "approval" and node.approvers.source == "manager" and node.approvers.chain
        stages.append(
            {
                "node_id": node.id,
                "name": node.name,
                "kind": kind,
                "mode": "sequence" if chain else getattr(node, "mode", ""),
                "approvers": [{"user": c.user, "reason": c.reason, "on_behalf_of": c.on_behalf_of} for c in candidates],
                "reason": reason,
                "parallel": parallel,
                "note": note,
            }
        )

    def walk(element_id: str, stop: str, reason: str, parallel: str) -> None:
        """From `element_id` up to (not including) `stop`: the end, or a parallel block's join."""
        while element_id and element_id not in (stop, "end"):
            element: Element = flow.elements[element_id]
            if element.kind in ("approval", "cc"):
                stage(element.node, element.kind, reason, parallel)
                reason = ""
                element_id = element.next
            elif element.kind == "split":
                branch, first = choose_branch(element, subject.facts, fields)
                reason = f"{describe_condition(branch.when, fields)} → {branch.name}"
                element_id = first
            elif element.kind == "fork":
                for branch, first in element.outgoing:
                    label = f"{parallel} / {branch.name}" if parallel else f"{element.node.name}: {branch.name}"
                    walk(first, element.join, reason, label)
                reason = ""
                element_id = flow.elements[element.join].next
            else:  # the join of an exclusive branch, or start
                element_id = element.next

    walk(flow.elements["start"].next, "end", "", "")
    return stages


def route_nodes(flow: Flow, *, facts: dict, fields: dict) -> set[str]:
    """The ids of the approval and CC nodes an object with these facts would pass: every branch of
    a parallel block, the chosen branch of an exclusive one."""
    nodes: set[str] = set()
    visited: set[str] = set()
    stack = [flow.elements["start"].next]
    while stack:
        element_id = stack.pop()
        while element_id and element_id != "end" and element_id not in visited:
            visited.add(element_id)
            element = flow.elements[element_id]
            if element.kind in ("approval", "cc"):
                nodes.add(element_id)
                element_id = element.next
            elif element.kind == "split":
                element_id = choose_branch(element, facts, fields)[1]
            elif element.kind == "fork":
                # Every branch walks on through the join; the first one there continues past it.
                stack.extend(first for _branch, first in element.outgoing)
                element_id = None
            else:
                element_id = element.next
    return nodes


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
            complete(ctx, "approved", system=ctx.passed_by_system or ctx.actor is None)
            return
        if element.kind == "approval":
            if _activate_approval(ctx, element, reason):
                return  # waiting for decisions
            ctx.passed_by_system = True
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
    """Create the step and tasks of an approval node; True while it waits for decisions. When the
    node has no approver: with if_empty "approve" the system passes it (False: walk on); when not
    even an administrator can decide it, the system rejects the request (the initiator sees why)."""
    node = element.node
    instance = ctx.instance
    on = timezone.localdate(ctx.now)
    candidates, note = resolve_approvers(
        node, subject=lambda: ctx.subject, initiator=instance.initiator, picked=instance.picked, on=on
    )
    sequential = node.mode == "sequence" or (node.approvers.source == "manager" and node.approvers.chain)
    step = _insert_step.save(
        ApprovalStep(
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
    )
    if not candidates:
        approve = note == "approve"
        step.state = StepState.SKIPPED if approve else StepState.REJECTED
        step.finished_at = ctx.now
        step.save(update_fields=["state", "finished_at"])
        if approve:
            rule, why = "if_empty=approve", _("No approver was found; the flow approves this node.")
        else:
            rule = "no_approver"
            why = _("Nobody can decide “%(node)s”: no approver and no administrator other than the initiator.") % {
                "node": node.name
            }
        ctx.action(
            ActionKind.AUTO_APPROVE if approve else ActionKind.AUTO_REJECT,
            node=node,
            detail={"rule": rule, "reason": why},
            system=True,
        )
        ctx.emit(
            events.ApprovalTaskDecided,
            task_id=None,
            node_id=node.id,
            decision="approve" if approve else "reject",
            by_system=True,
            changes={"node": node.name, "rule": rule, "reason": why},
            system=True,
        )
        if not approve:
            complete(ctx, "rejected", comment=why, system=True)
            return True
        return False
    previous = None
    for position, candidate in enumerate(candidates):
        task = _insert_task.save(
            ApprovalTask(
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
        )
        if task.state == TaskState.PENDING:
            task_created(ctx, task, node)
        previous = task
    return True


def task_created(ctx: Context, task: ApprovalTask, node) -> None:
    hook = getattr(ctx.adapter, "on_task_created", None)
    if hook is not None:
        hook(ctx.instance.subject_id, task)
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
        node,
        subject=lambda: ctx.subject,
        initiator=instance.initiator,
        picked=instance.picked,
        on=timezone.localdate(ctx.now),
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


def step_tasks(step: ApprovalStep) -> list[tuple[str, str]]:
    """(kind, state) of every task of the step: as decide_task read them under the instance lock
    (kept on the step as `_task_rows`), else read now."""
    rows = getattr(step, "_task_rows", None)
    return rows if rows is not None else list(step.tasks.values_list("kind", "state"))


def step_outcome(step: ApprovalStep) -> str | None:
    """approved, rejected, or None while undecided, from the step's tasks and its mode. Tasks that
    were transferred or cancelled (replaced on escalation) do not count; every added signer must
    approve, whatever the mode.
    any       one approval passes, one rejection rejects
    all       every remaining approver approves; one rejection rejects
    sequence  as all (the order is kept by the tasks' `after` links)
    quorum    `needed` approvals pass; rejected once too few approvers are left to reach them"""
    rows = [(k, st) for k, st in step_tasks(step) if st not in (TaskState.TRANSFERRED, TaskState.CANCELLED)]
    base = [s for k, s in rows if k == TaskKind.APPROVER]
    added = [s for k, s in rows if k == TaskKind.ADDED]
    approvals = base.count(TaskState.APPROVED)
    rejections = base.count(TaskState.REJECTED)
    if TaskState.REJECTED in added:
        return "rejected"
    if step.mode == "quorum":
        if rejections > len(base) - step.needed:
            return "rejected"
        passed = approvals >= step.needed
    elif rejections:
        return "rejected"
    elif step.mode == "any":
        passed = approvals >= 1
    else:
        passed = bool(base) and approvals == len(base)
    if passed and all(s == TaskState.APPROVED for s in added):
        return "approved"
    return None


def close_open_tasks(step: ApprovalStep, now) -> None:
    _close_tasks(TaskState.CANCELLED, now, [step.pk], list(OPEN_TASK_STATES))


def settle_step(ctx: Context, step: ApprovalStep) -> None:
    """After a decision: finish the step if its mode is satisfied (or can no longer be) and move on."""
    outcome = step_outcome(step)
    if outcome is None:
        return
    step.state = StepState.APPROVED if outcome == "approved" else StepState.REJECTED
    step.finished_at = ctx.now
    _finish_step(step.state, step.finished_at, step.pk)
    if any(st in OPEN_TASK_STATES for _k, st in step_tasks(step)):
        close_open_tasks(step, ctx.now)
    if outcome == "approved":
        enter(ctx, ctx.flow.elements[step.node_id].next)
    else:
        complete(ctx, "rejected")


def cancel_active(ctx: Context) -> None:
    """Cancel the instance's active steps and their open tasks (none, mostly: one statement)."""
    active = [step_id for (step_id,) in _active_steps(ctx.instance.pk, StepState.ACTIVE)]
    if active:
        _close_tasks(TaskState.CANCELLED, ctx.now, active, list(OPEN_TASK_STATES))
        _cancel_steps(StepState.CANCELLED, ctx.now, active)


def complete(ctx: Context, outcome: str, *, comment: str = "", system: bool = False) -> None:
    """End the instance approved or rejected, and tell the subject. `system`: a rule of the flow
    ended it (the last node passed with no approver, a timeout): the timeline, the audit entry and
    the subject's own history show no actor, not whoever happened to set the walk off."""
    instance = ctx.instance
    cancel_active(ctx)
    instance.state = InstanceState.APPROVED if outcome == "approved" else InstanceState.REJECTED
    instance.finished_at, instance.updated_at = ctx.now, timezone.now()
    _finish_instance(instance.state, instance.finished_at, instance.updated_at, instance.decided, instance.pk)
    ctx.action(ActionKind.COMPLETE, detail={"outcome": outcome}, system=system)
    ctx.emit(events.ApprovalCompleted, outcome=outcome, changes={"outcome": outcome}, system=system)
    ctx.adapter.on_outcome(
        actor=None if system else ctx.actor,
        subject_id=instance.subject_id,
        outcome=outcome,
        comment=comment or ctx.comment,
        instance=instance,
    )


# --- returns -------------------------------------------------------------------------------------


def enclosing_parallel(flow: Flow, document: Document, node_id: str) -> str | None:
    """The id of the outermost parallel block holding `node_id`, or None."""
    for node, _inside, path in walk_nodes(document.nodes):
        if node.id == node_id:
            for block_id, _branch in path:
                if flow.elements[block_id].kind == "fork":
                    return block_id
            return None
    return None


def return_targets(instance: ApprovalInstance, step: ApprovalStep, steps=None) -> list[tuple[str, str]]:
    """Where a rejection at `step` may send the instance back, (node id, name) in flow order:
    earlier approval nodes that approved in it and are not inside a parallel block (a block runs
    again as a whole, from before it); the initiator, always possible, is not listed. What the
    task page offers, the API lists and decide_task accepts. `steps`: the instance's steps if
    already read."""
    flow, document = flow_of(instance.definition), document_of(instance.definition)
    if step.node_id not in flow.order:
        return []
    here = flow.order.index(step.node_id)
    if steps is None:
        steps = instance.steps.filter(kind="approval", state=StepState.APPROVED)
    found = {}
    for s in steps:
        if s.kind != "approval" or s.state != StepState.APPROVED or s.node_id not in flow.order:
            continue
        if flow.order.index(s.node_id) >= here:
            continue
        if enclosing_parallel(flow, document, s.node_id) is None:
            found[s.node_id] = s.node_name
    return sorted(found.items(), key=lambda kv: flow.order.index(kv[0]))
