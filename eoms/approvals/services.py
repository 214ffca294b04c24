"""Every write of approvals: definitions (save, publish), instances (start, resubmit, withdraw,
nudge, comment, migrate), tasks (decide, transfer, add signer, bulk) and timers. One transaction
each; every change leaves an action on the instance's timeline, an audit entry and an outbox event.

Concurrency: every change to an instance first locks the instance row (SELECT … FOR UPDATE; on
SQLite the IMMEDIATE transaction takes the write lock), then re-reads the task it acts on, and
moves the task with a compare-and-set on its state and version. Two approvers of a 会签 node who
decide at the same instant are therefore applied one after the other, each counted once; a
double-clicked approve finds its task already decided and answers 409.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from eoms.accounts.roles import READ_ONLY_ROLES
from eoms.accounts.selectors import is_read_only, managers_of
from eoms.core.events import emit
from eoms.core.ids import valid_uuids
from eoms.core.rows import Update, Values

from . import engine, events, policies
from .definition import (
    OPERATORS,
    Condition,
    DocumentInvalid,
    compile_flow,
    condition_problems,
    evaluate,
    parse_document,
    validate_document,
    walk_nodes,
)
from .engine import Context, enter, settle_step
from .errors import (
    ApprovalConflict,
    ApprovalInputInvalid,
    ApprovalPermissionDenied,
    DefinitionConflict,
    DefinitionInvalid,
    NoApplicableFlow,
    TaskNotPending,
)
from .models import (
    ActionAttachment,
    ActionKind,
    ApprovalDefinition,
    ApprovalInstance,
    ApprovalStep,
    ApprovalTask,
    DefinitionStatus,
    InstanceState,
    StepState,
    TaskKind,
    TaskState,
)
from .selectors import access_definition, access_instance, current_instance, lock_instance, published_definitions
from .subjects import get_adapter

__all__ = [
    "save_definition",
    "publish_definition",
    "check_definition",
    "select_definition",
    "start_approval",
    "decide_task",
    "bulk_decide",
    "transfer_task",
    "add_signer",
    "withdraw_approval",
    "end_for_subject",
    "nudge_approval",
    "comment_approval",
    "read_cc",
    "process_timers",
    "preview_migration",
    "migrate_instances",
    "simulate",
    "dry_run",
    "NUDGE_INTERVAL",
]

NUDGE_INTERVAL = timedelta(hours=1)
MAX_COMMENT = 4000


def _clean_comment(comment, *, required: bool = False, field: str = "comment") -> str:
    if comment is not None and not isinstance(comment, str):
        raise ApprovalInputInvalid(errors=[{"field": field, "message": _("Must be text.")}])
    text = (comment or "").strip()
    if required and not text:
        raise ApprovalInputInvalid(errors=[{"field": field, "message": _("Give a reason: a comment is required.")}])
    if "\x00" in text:
        raise ApprovalInputInvalid(errors=[{"field": field, "message": _("Contains a NUL character.")}])
    if len(text) > MAX_COMMENT:
        raise ApprovalInputInvalid(
            errors=[{"field": field, "message": _("At most %(max)d characters.") % {"max": MAX_COMMENT}}]
        )
    return text


# --- definitions ---------------------------------------------------------------------------------


def _require_manage(actor) -> None:
    if not policies.can_manage_definitions(actor):
        raise ApprovalPermissionDenied(_("Only an administrator may change approval flows."))


def _owner(document, path: list[str]) -> tuple[dict | None, bool, list[str]]:
    """The innermost node or branch of a raw document on `path` (keys and list indexes, as in a
    parse error's field): (it, whether it is a branch, the rest of the path below it)."""
    owner, is_branch, rest, here = None, False, path, document
    for i, part in enumerate(path):
        if isinstance(here, dict) and part not in here and part == here.get("type"):
            continue  # pydantic puts a node's type in the path; the document does not
        if isinstance(here, dict):
            here = here.get(part)
        elif isinstance(here, list) and part.isdigit() and int(part) < len(here):
            here = here[int(part)]
            container = path[i - 1] if i else ""
            if container in ("nodes", "branches") and isinstance(here, dict):
                owner, rest = here, path[i + 1 :]
                is_branch = container == "branches" or here.get("type") in ("branch", "parallel")
                if container == "nodes" and rest[:1] == [str(here.get("type"))]:
                    rest = rest[1:]  # pydantic puts the node type in the path
        else:
            break
    return owner, is_branch, rest


def _name_nodes(document, errors: list[dict]) -> list[dict]:
    """Parse errors of a document, each message naming the node or branch it is about (the field
    keeps the path), e.g. “Branch “Large”: unknown operator “between”; use one of eq, ne, …”."""
    out = []
    for error in errors:
        path = error["field"].split(".")[1:]
        owner, is_branch, rest = _owner(document, path)
        if owner is None:
            out.append(error)
            continue
        label = str(owner.get("name") or owner.get("id") or "?")
        if rest and rest[-1] == "operator":
            message = _("unknown operator “%(op)s”; use one of %(ops)s.") % {
                "op": _dig(owner, rest),
                "ops": ", ".join(OPERATORS),
            }
        else:
            message = f"{'.'.join(rest)}: {error['message']}" if rest else error["message"]
        head = (_("Branch “%(node)s”") if is_branch else _("Node “%(node)s”")) % {"node": label}
        out.append({"field": error["field"], "node": str(owner.get("id") or ""), "message": f"{head}: {message}"})
    return out


def _dig(data, path):
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _parse(document, applies_when):
    try:
        doc = parse_document(document)
    except DocumentInvalid as exc:
        raise DefinitionInvalid(errors=_name_nodes(document, exc.errors))
    condition = None
    if applies_when:
        try:
            condition = Condition.model_validate(applies_when)
        except Exception as exc:  # pydantic's ValidationError: report it as a field error
            raise DefinitionInvalid(
                errors=[{"field": "applies_when", "message": _("Not a valid condition: %(error)s") % {"error": exc}}]
            )
    return doc, condition


def check_definition(definition: ApprovalDefinition) -> list[dict]:
    """Every problem that stops `definition` from being published (empty list: none)."""
    from django.contrib.auth.models import Group

    User = get_user_model()
    try:
        doc, condition = _parse(definition.document, definition.applies_when)
    except DefinitionInvalid as exc:
        return exc.errors
    adapter = get_adapter(definition.subject_type)
    fields = {f.name: f for f in adapter.fields()}
    editable = {f.name: f for f in adapter.editable_fields()}
    problems = validate_document(
        doc,
        fields=fields,
        editable=editable,
        user_ids_active=lambda ids: {
            str(i) for i in User.objects.filter(pk__in=valid_uuids(ids), is_active=True).values_list("pk", flat=True)
        },
        role_has_users=lambda role: Group.objects.filter(name=role, user__is_active=True).exists(),
        user_fields=set(getattr(adapter, "user_fields", lambda: [])()),
        read_only_roles=set(READ_ONLY_ROLES),
    )
    if condition is not None:
        problems += [
            {"field": "applies_when", "node": "", "message": m}
            for m in condition_problems(condition, fields, str(_("Applies when")))
        ]
    if not definition.name.strip():
        problems.append({"field": "name", "node": "", "message": _("Give the flow a name.")})
    return problems


@transaction.atomic
def save_definition(
    *,
    actor,
    name: str,
    document,
    key: str = "",
    definition_id=None,
    subject_type: str = "orders.order",
    description: str = "",
    priority: int = 100,
    is_default: bool = False,
    applies_when=None,
    expected_version: int | None = None,
) -> ApprovalDefinition:
    """Create a flow (a new key, revision 1, draft) or change one. Changing a draft edits it in
    place (compare-and-set on version); changing a published or superseded revision makes the
    next revision as a draft, so running instances keep what they started on. Problems that only
    stop publishing are reported by check_definition, not here: a draft may be incomplete."""
    _require_manage(actor)
    doc, _condition = _parse(document, applies_when)
    name = (name or "").strip()
    errors = []
    if not name or len(name) > 120:
        errors.append({"field": "name", "message": _("Give a name of at most 120 characters.")})
    if not isinstance(priority, int) or not 0 <= priority <= 100000:
        errors.append({"field": "priority", "message": _("Priority is a whole number from 0 to 100000.")})
    try:
        get_adapter(subject_type)
    except LookupError:
        errors.append({"field": "subject_type", "message": _("Unknown object type %(type)s.") % {"type": subject_type}})
    if len(description or "") > 4000:
        errors.append({"field": "description", "message": _("At most %(max)d characters.") % {"max": 4000}})
    if errors:
        raise DefinitionInvalid(errors=errors)
    values = {
        "name": name,
        "description": (description or "").strip(),
        "subject_type": subject_type,
        "priority": priority,
        "is_default": bool(is_default),
        "applies_when": applies_when or None,
        "document": doc.model_dump(mode="json", exclude_defaults=False),
    }
    if definition_id is None:
        from django.utils.text import slugify

        if key:
            key = slugify(key)[:60] or "flow"
            if ApprovalDefinition.objects.filter(key=key).exists():
                raise DefinitionInvalid(
                    errors=[{"field": "key", "message": _("The key %(key)s is taken.") % {"key": key}}]
                )
        else:
            # A key made from the name (a Chinese name gives none: "flow") is made unique: the person
            # who typed only a name should not be told that a key they never chose is taken.
            base = slugify(name)[:50] or "flow"
            key, n = base, 1
            while ApprovalDefinition.objects.filter(key=key).exists():
                n += 1
                key = f"{base}-{n}"
        definition = ApprovalDefinition.objects.create(key=key, revision=1, created_by=actor, **values)
    else:
        current = access_definition(actor, definition_id, for_update=True)
        if expected_version is not None and expected_version != current.version:
            raise DefinitionConflict(
                _("%(name)s was changed by someone else (now version %(v)s); reload it.")
                % {"name": current, "v": current.version}
            )
        if current.status == DefinitionStatus.DRAFT:
            updated = ApprovalDefinition.objects.filter(pk=current.pk, version=current.version).update(
                **values, version=F("version") + 1, updated_at=timezone.now()
            )
            if not updated:
                raise DefinitionConflict(_("%(name)s was changed by someone else; reload it.") % {"name": current})
            definition = ApprovalDefinition.objects.get(pk=current.pk)
        else:
            draft = ApprovalDefinition.objects.filter(key=current.key, status=DefinitionStatus.DRAFT).first()
            if draft is not None:
                raise DefinitionConflict(
                    _("Revision %(rev)s of this flow is already a draft; edit that draft.") % {"rev": draft.revision},
                    draft_id=str(draft.pk),
                )
            latest = ApprovalDefinition.objects.filter(key=current.key).order_by("-revision").first()
            definition = ApprovalDefinition.objects.create(
                key=current.key, revision=latest.revision + 1, created_by=actor, **values
            )
    emit(
        events.DefinitionSaved(id=definition.pk, key=definition.key, revision=definition.revision),
        actor=actor,
        object_repr=str(definition),
        changes={"name": definition.name, "status": definition.status, "nodes": len(doc.nodes)},
    )
    return definition


@transaction.atomic
def publish_definition(*, actor, definition_id, expected_version: int | None = None) -> ApprovalDefinition:
    """Publish a draft: validated first (every problem listed, each naming its node); the key's
    previously published revision is superseded. Instances already running stay on theirs."""
    _require_manage(actor)
    definition = access_definition(actor, definition_id, for_update=True)
    if definition.status != DefinitionStatus.DRAFT:
        raise DefinitionConflict(
            _("Only a draft can be published; %(name)s is %(status)s.")
            % {"name": definition, "status": definition.get_status_display()}
        )
    if expected_version is not None and expected_version != definition.version:
        raise DefinitionConflict(_("%(name)s was changed by someone else; reload it.") % {"name": definition})
    problems = check_definition(definition)
    if problems:
        raise DefinitionInvalid(
            _("%(name)s cannot be published: %(count)s problem(s).") % {"name": definition, "count": len(problems)},
            errors=problems,
        )
    now = timezone.now()
    ApprovalDefinition.objects.filter(key=definition.key, status=DefinitionStatus.PUBLISHED).update(
        status=DefinitionStatus.SUPERSEDED, updated_at=now
    )
    ApprovalDefinition.objects.filter(pk=definition.pk).update(
        status=DefinitionStatus.PUBLISHED,
        published_at=now,
        published_by=actor,
        version=F("version") + 1,
        updated_at=now,
    )
    definition.refresh_from_db()
    emit(
        events.DefinitionPublished(id=definition.pk, key=definition.key, revision=definition.revision),
        actor=actor,
        object_repr=str(definition),
        changes={"status": ["draft", "published"], "revision": definition.revision},
    )
    return definition


def select_definition(subject_type: str, facts: dict, *, candidates=None) -> tuple[ApprovalDefinition, str]:
    """The published flow for an object with these facts, and why: the first by priority whose
    condition holds, else the default. NoApplicableFlow when there is none."""
    adapter = get_adapter(subject_type)
    definitions = candidates if candidates is not None else published_definitions(subject_type)
    from .definition import describe_condition

    for definition in definitions:
        condition = engine.condition_of(definition)
        # Testing a condition needs the fields' types; describing the one that holds, their labels
        # and choices (read from the database).
        if condition is not None and evaluate(condition, facts, engine.field_types(adapter)):
            return definition, describe_condition(condition, {f.name: f for f in adapter.fields()})
    for definition in definitions:
        if definition.is_default:
            return definition, _("default flow")
    raise NoApplicableFlow(
        _("No published approval flow applies to this %(type)s; an administrator must publish one (or a default).")
        % {"type": adapter.label}
    )


# --- instances -----------------------------------------------------------------------------------


def _lock_instance(actor, instance_id) -> ApprovalInstance:
    return access_instance(actor, instance_id, for_update=True)


def _context(actor, instance: ApprovalInstance, **kw) -> Context:
    return Context(actor=actor, instance=instance, **kw)


def _check_picked(doc, picked, initiator, *, route: set[str] | None = None) -> dict:
    """The picks of approvers made at submission ({node id: user id}), checked: every picked-source
    node on the object's route (`route`: node ids; None: every node) needs an active user who is
    not the initiator (unless the node allows self-approval). Picks for nodes off the route are
    checked when given. 422 naming picked.<node> otherwise."""
    User = get_user_model()
    picked = {str(k): str(v) for k, v in (picked or {}).items() if v}
    errors = []
    for node, _inside, _path in walk_nodes(doc.nodes):
        if node.type != "approval" or node.approvers.source != "picked":
            continue
        user_id = picked.get(node.id)
        if user_id is None and route is not None and node.id not in route:
            continue
        ids = valid_uuids([user_id])
        user = User.objects.filter(pk=ids[0], is_active=True).first() if ids else None
        if user is None:
            errors.append(
                {
                    "field": f"picked.{node.id}",
                    "message": _("Pick the approver for “%(node)s”.") % {"node": node.name},
                }
            )
        elif user.pk == initiator.pk and not node.allow_self_approval:
            errors.append(
                {
                    "field": f"picked.{node.id}",
                    "message": _("You cannot pick yourself to approve your own request."),
                }
            )
        elif is_read_only(user):
            errors.append(
                {"field": f"picked.{node.id}", "message": _("%(user)s cannot decide approvals.") % {"user": user}}
            )
    if errors:
        raise ApprovalInputInvalid(errors=errors)
    return picked


def _route(definition, subject) -> set[str] | None:
    """The nodes the object would pass on `definition` (for the picks it needs); None (no walk)
    when the flow has no picked approver at all."""
    doc = engine.document_of(definition)
    if not any(n.type == "approval" and n.approvers.source == "picked" for n, _i, _p in walk_nodes(doc.nodes)):
        return None
    adapter = get_adapter(definition.subject_type)
    fields = {f.name: f for f in adapter.fields()}
    return engine.route_nodes(engine.flow_of(definition), facts=subject.facts, fields=fields)


@transaction.atomic
def start_approval(*, actor, subject_type: str, subject_id, picked: dict | None = None, comment: str = ""):
    """Start the approval of an object (its context calls this when it is submitted), or resume a
    returned one from the node that returned it. Picks the flow by the object's facts; the caller
    has already checked that the actor may submit it. Answers the instance."""
    adapter = get_adapter(subject_type)
    subject = adapter.load(subject_id)
    comment = _clean_comment(comment)
    now = timezone.now()
    existing = current_instance(subject_type, subject.id)
    if existing is not None:
        instance = lock_instance(existing.pk)
        if instance.state == InstanceState.RUNNING:
            raise ApprovalConflict(_("%(subject)s is already in approval.") % {"subject": subject.repr})
        # Resubmission after a return to the initiator: same instance, from the returning node.
        ctx = Context(actor=actor, instance=instance, loaded_subject=subject, now=now, comment=comment)
        # Picks made at the first submission stand unless picked anew.
        instance.picked = _check_picked(
            ctx.document,
            {**instance.picked, **{str(k): v for k, v in (picked or {}).items() if v}},
            instance.initiator,
            route=_route(instance.definition, subject),
        )
        instance.state = InstanceState.RUNNING
        instance.round += 1
        instance.subject_repr = subject.repr[:200]
        resume = instance.resume_node or ctx.flow.elements["start"].next
        instance.resume_node = ""
        instance.save(update_fields=["state", "round", "subject_repr", "resume_node", "picked", "updated_at"])
        ctx.action(ActionKind.RESUBMIT, comment=comment, detail={"resume_at": resume})
        ctx.emit(
            events.ApprovalStarted,
            definition_id=instance.definition_id,
            initiator_id=instance.initiator_id,
            audit_action="approvals.approval_resubmitted",
            changes={"resume_at": resume, "comment": comment},
        )
        enter(ctx, resume, reason=_("resubmitted after revision"))
        return instance
    definition, why = select_definition(subject_type, subject.facts)
    doc = engine.document_of(definition)
    picked = _check_picked(doc, picked, actor, route=_route(definition, subject))
    instance = ApprovalInstance.objects.create(
        definition=definition,
        subject_type=subject_type,
        subject_id=str(subject.id),
        subject_repr=subject.repr[:200],
        project_id=subject.project_id,
        initiator=actor,
        picked=picked,
        started_at=now,
    )
    ctx = Context(actor=actor, instance=instance, loaded_subject=subject, now=now, comment=comment)
    ctx.action(ActionKind.SUBMIT, comment=comment, detail={"flow": str(definition), "why": why})
    ctx.emit(
        events.ApprovalStarted,
        definition_id=definition.pk,
        initiator_id=actor.pk,
        changes={"flow": str(definition), "why": why, "comment": comment},
    )
    enter(ctx, ctx.flow.elements["start"].next)
    return instance


def _pending_task_for(actor, task_id) -> tuple[ApprovalInstance, ApprovalTask]:
    """Lock the task's instance, then read the task afresh: the order that serialises decisions.
    404 for a task the actor may not see, 403 for someone else's task (a task's assignee never
    changes: a transfer makes a new task) or a read-only actor, 409 for a task no longer pending.
    The task comes with its step, instance (flow, initiator) and `peers` (selectors.decision_task)."""
    from .selectors import access_task, decision_task

    # The assignee's own task: the instance locked and everything read in one narrow statement after
    # it. Anyone else goes through the full visibility check (404 for what they may not see, 403 for
    # what they may see but not decide).
    task = decision_task(actor, task_id)
    if task is None:
        seen = access_task(actor, task_id)
        if is_read_only(actor):
            raise ApprovalPermissionDenied(_("Your role only reads; it cannot decide approvals."))
        raise ApprovalPermissionDenied(_("This task is %(user)s's, not yours.") % {"user": seen.assignee})
    # As is_read_only(actor), from the flag read with the task (roles_of: an inactive user has none).
    if task.actor_read_only and getattr(actor, "is_authenticated", False) and actor.is_active:
        raise ApprovalPermissionDenied(_("Your role only reads; it cannot decide approvals."))
    instance = task.instance
    if task.state != TaskState.PENDING or instance.state != InstanceState.RUNNING:
        raise TaskNotPending(
            _("This task is already %(state)s; nothing was changed.") % {"state": task.get_state_display()},
            task_state=task.state,
        )
    return instance, task


_task_cas: dict[tuple[str, ...], Update] = {}
_step_tasks = Values(ApprovalTask, fields=("id", "kind", "state", "after"), where=("step",), order_by=("created_at",))
_mark_decided = Update(ApprovalInstance, set=("decided", "updated_at"), where=("id",))


def _move_task(task: ApprovalTask, **values) -> None:
    """Compare-and-set on the task: only a pending task at the version we read moves."""
    names = tuple(values)
    cas = _task_cas.get(names)
    if cas is None:
        cas = _task_cas[names] = Update(
            ApprovalTask, set=(*names, "updated_at"), where=("id", "state", "version"), increment=("version",)
        )
    updated = cas(*values.values(), timezone.now(), task.pk, TaskState.PENDING, task.version)
    if not updated:
        raise TaskNotPending(_("This task was decided by someone else a moment ago; reload it."))
    for k, v in values.items():
        setattr(task, k, v)


def _store_attachments(action, uploads) -> list[str]:
    stored = []
    for upload in uploads or ():
        attachment = ActionAttachment(
            action=action,
            original_name=upload.name,
            content_type=upload.content_type,
            size=upload.size,
            sha256=upload.sha256,
        )
        attachment.file.save(upload.name, upload.as_file(), save=False)
        stored.append(attachment.file.name)
        attachment.save(force_insert=True)
    return stored


def _with_cleanup(fn):
    """Files written inside a failed transaction are removed again."""

    def wrapper(*args, attachments=(), **kwargs):
        stored: list[str] = []
        try:
            return fn(*args, attachments=attachments, stored=stored, **kwargs)
        except BaseException:
            for path in stored:
                ActionAttachment.file.field.storage.delete(path)
            raise

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@_with_cleanup
@transaction.atomic
def decide_task(
    *,
    actor,
    task_id,
    decision: str,
    comment: str = "",
    return_to: str | None = None,
    changes: dict | None = None,
    attachments=(),
    stored=None,
) -> ApprovalTask:
    """Approve or reject a pending task of the actor. A rejection ends the approval (the object
    goes where the flow's on_reject says), or with `return_to` sends it back to an earlier approval
    node (that node decides again) or to the initiator ("initiator": the object returns for
    revision and, resubmitted, continues from this node). `changes` edits the order fields the
    node lets its approvers edit."""
    if decision not in ("approve", "reject"):
        raise ApprovalInputInvalid(errors=[{"field": "decision", "message": _("Decide approve or reject.")}])
    instance, task = _pending_task_for(actor, task_id)
    ctx = _context(actor, instance, comment="")
    node = ctx.flow.node(task.step.node_id)
    if actor.pk == instance.initiator_id and node is not None and not node.allow_self_approval:
        raise ApprovalPermissionDenied(_("You cannot approve your own request."))
    comment = _clean_comment(
        comment, required=decision == "reject" and (node is None or node.comment_required_on_reject)
    )
    ctx.comment = comment
    ctx.on_behalf_of = task.on_behalf_of
    diff = {}
    if changes:
        if decision != "approve":
            raise ApprovalInputInvalid(errors=[{"field": "changes", "message": _("Only an approval may edit fields.")}])
        allowed = set(node.editable_fields if node else ())
        refused = sorted(set(changes) - allowed)
        if refused:
            raise ApprovalInputInvalid(
                errors=[
                    {
                        "field": f"changes.{f}",
                        "message": _("This node does not let approvers edit %(field)s.") % {"field": f},
                    }
                    for f in refused
                ]
            )
        diff = ctx.adapter.apply_edits(actor=actor, subject=ctx.subject, changes=changes)
        ctx.subject = ctx.adapter.load(instance.subject_id)
    if return_to and decision != "reject":
        raise ApprovalInputInvalid(errors=[{"field": "return_to", "message": _("Only a rejection returns.")}])
    target = _return_target(ctx, task.step, return_to) if return_to else None
    now = ctx.now
    _move_task(
        task,
        state=TaskState.APPROVED if decision == "approve" else TaskState.REJECTED,
        decided_at=now,
        comment=comment,
    )
    if not instance.decided:
        instance.decided, instance.updated_at = True, timezone.now()
        _mark_decided(True, instance.updated_at, instance.pk)
    kind = ActionKind.APPROVE if decision == "approve" else (ActionKind.RETURN if target else ActionKind.REJECT)
    action = ctx.action(
        kind,
        task=task,
        node=node,
        comment=comment,
        detail={k: v for k, v in {"changes": diff, "return_to": return_to}.items() if v},
    )
    stored.extend(_store_attachments(action, attachments))
    ctx.emit(
        events.ApprovalTaskDecided,
        task_id=task.pk,
        node_id=task.step.node_id,
        decision=decision if not target else "return",
        changes={
            "decision": decision,
            "node": task.step.node_name,
            "comment": comment,
            "on_behalf_of": str(task.on_behalf_of) if task.on_behalf_of_id else None,
            "edited": diff or None,
            "return_to": return_to,
            "attachments": len(attachments or ()),
        },
    )
    if target is not None:
        _return(ctx, task.step, target)
        return task
    step = task.step
    if not task.peers:
        # The step's only task (read after the instance lock): its outcome follows from this one.
        step._task_rows = [(task.kind, task.state)]
        settle_step(ctx, step)
        return task
    # The step's tasks, read once after the instance lock (current): the outcome and the followers
    # to wake come from the same rows.
    rows = _step_tasks(step.pk)
    step._task_rows = [(k, st) for _i, k, st, _a in rows]
    if decision == "approve":
        waiting = [i for i, _k, st, after in rows if after == task.pk and st == TaskState.WAITING]
        if waiting:
            ApprovalTask.objects.filter(pk__in=waiting).update(state=TaskState.PENDING, version=F("version") + 1)
            step._task_rows = [(k, TaskState.PENDING if i in waiting else st) for i, k, st, _a in rows]
            for follower in ApprovalTask.objects.filter(pk__in=waiting).select_related("step", "assignee"):
                engine.task_created(ctx, follower, node)
    settle_step(ctx, step)
    return task


def _enclosing_parallel(ctx: Context, node_id: str) -> str | None:
    return engine.enclosing_parallel(ctx.flow, ctx.document, node_id)


def _return_target(ctx: Context, step: ApprovalStep, return_to: str) -> str:
    if return_to == "initiator":
        return return_to
    element = ctx.flow.elements.get(return_to)
    order = ctx.flow.order
    if element is None or element.kind != "approval":
        raise ApprovalInputInvalid(
            errors=[
                {
                    "field": "return_to",
                    "message": _("“%(node)s” is not an approval node of this flow.") % {"node": return_to},
                }
            ]
        )
    passed = ApprovalStep.objects.filter(
        instance=ctx.instance, node_id=return_to, kind="approval", state=StepState.APPROVED
    ).exists()
    if not passed or order.index(return_to) >= order.index(step.node_id):
        raise ApprovalInputInvalid(
            errors=[
                {
                    "field": "return_to",
                    "message": _("Return only to an earlier node that has approved, or to the initiator."),
                }
            ]
        )
    block = _enclosing_parallel(ctx, return_to)
    if block is not None and block != _enclosing_parallel(ctx, step.node_id):
        raise ApprovalInputInvalid(
            errors=[
                {
                    "field": "return_to",
                    "message": _("“%(node)s” is inside a parallel block; return to a node before the block.")
                    % {"node": element.node.name},
                }
            ]
        )
    if block is not None:
        raise ApprovalInputInvalid(
            errors=[
                {
                    "field": "return_to",
                    "message": _("Inside a parallel block, return to the initiator or to a node before the block."),
                }
            ]
        )
    return return_to


def _return(ctx: Context, step: ApprovalStep, target: str) -> None:
    instance = ctx.instance
    engine.cancel_active(ctx)
    ctx.emit(events.ApprovalReturned, to_node=target, changes={"from": step.node_name, "to": target})
    if target == "initiator":
        resume = _enclosing_parallel(ctx, step.node_id) or step.node_id
        instance.state = InstanceState.RETURNED
        instance.resume_node = resume
        instance.save(update_fields=["state", "resume_node", "updated_at"])
        ctx.adapter.on_outcome(
            actor=ctx.actor, subject_id=instance.subject_id, outcome="returned", comment=ctx.comment, instance=instance
        )
        return
    instance.round += 1
    instance.save(update_fields=["round", "updated_at"])
    enter(ctx, target, reason=_("returned by %(user)s") % {"user": ctx.actor})


def bulk_decide(*, actor, task_ids: list, decision: str, comment: str = "") -> list[dict]:
    """Decide many tasks, each in its own transaction: one failure does not stop the others.
    Answers one result per task: {"task_id", "ok", "code", "detail"}. A bulk rejection needs a
    comment (checked before anything is decided)."""
    if decision not in ("approve", "reject"):
        raise ApprovalInputInvalid(errors=[{"field": "decision", "message": _("Decide approve or reject.")}])
    comment = _clean_comment(comment, required=decision == "reject")
    if not task_ids or len(task_ids) > 200:
        raise ApprovalInputInvalid(errors=[{"field": "task_ids", "message": _("Choose from 1 to 200 tasks.")}])
    from eoms.core.errors import DomainError

    results = []
    for task_id in dict.fromkeys(str(t) for t in task_ids):
        try:
            decide_task(actor=actor, task_id=task_id, decision=decision, comment=comment)
            results.append({"task_id": task_id, "ok": True, "code": "ok", "detail": ""})
        except DomainError as exc:
            results.append({"task_id": task_id, "ok": False, "code": exc.code, "detail": exc.detail})
    return results


@transaction.atomic
def transfer_task(*, actor, task_id, to_user, comment: str = "") -> ApprovalTask:
    """Hand a pending task to another user (转交): the new user decides in the same place."""
    instance, task = _pending_task_for(actor, task_id)
    comment = _clean_comment(comment)
    _check_new_signer(instance, task.step, to_user, field="to_user")
    ctx = _context(actor, instance, comment=comment)
    _move_task(task, state=TaskState.TRANSFERRED, decided_at=ctx.now, comment=comment)
    new = ApprovalTask.objects.create(
        instance=instance,
        step=task.step,
        kind=task.kind,
        state=TaskState.PENDING,
        assignee=to_user,
        position=task.position,
        after=task.after,
        reason=_("transferred by %(user)s") % {"user": actor},
    )
    ApprovalTask.objects.filter(after=task).exclude(pk=new.pk).update(after=new)
    node = ctx.flow.node(task.step.node_id)
    ctx.action(ActionKind.TRANSFER, task=task, node=node, comment=comment, detail={"to": str(to_user)})
    ctx.emit(
        events.ApprovalTaskTransferred,
        task_id=task.pk,
        new_task_id=new.pk,
        to_user_id=to_user.pk,
        changes={"node": task.step.node_name, "from": str(actor), "to": str(to_user), "comment": comment},
    )
    engine.task_created(ctx, new, node)
    return new


def _check_new_signer(instance, step, user, *, field: str) -> None:
    if user is None or not user.is_active:
        raise ApprovalInputInvalid(errors=[{"field": field, "message": _("Choose an active user.")}])
    if user.pk == instance.initiator_id:
        raise ApprovalInputInvalid(
            errors=[{"field": field, "message": _("The initiator cannot approve their own request.")}]
        )
    if step.tasks.filter(assignee=user, state__in=engine.OPEN_TASK_STATES).exists():
        raise ApprovalInputInvalid(
            errors=[{"field": field, "message": _("%(user)s already has a task at this node.") % {"user": user}}]
        )
    if is_read_only(user):
        raise ApprovalInputInvalid(
            errors=[{"field": field, "message": _("%(user)s cannot decide approvals.") % {"user": user}}]
        )


@transaction.atomic
def add_signer(*, actor, task_id, user, position: str, comment: str = "") -> ApprovalTask:
    """Add a signer to the actor's pending task (加签): `before` (they decide first, then the actor),
    `after` (they decide once the actor approves) or `parallel` (alongside). An added signer must
    approve for the node to pass, whatever its mode."""
    if position not in ("before", "after", "parallel"):
        raise ApprovalInputInvalid(
            errors=[{"field": "position", "message": _("Position is before, after or parallel.")}]
        )
    instance, task = _pending_task_for(actor, task_id)
    comment = _clean_comment(comment)
    _check_new_signer(instance, task.step, user, field="user")
    ctx = _context(actor, instance, comment=comment)
    node = ctx.flow.node(task.step.node_id)
    new = ApprovalTask.objects.create(
        instance=instance,
        step=task.step,
        kind=TaskKind.ADDED,
        state=TaskState.WAITING if position == "after" else TaskState.PENDING,
        assignee=user,
        after=task if position == "after" else None,
        position=task.position,
        reason={
            "before": _("added by %(user)s, to decide before them"),
            "after": _("added by %(user)s, to decide after them"),
            "parallel": _("added by %(user)s, to decide alongside them"),
        }[position]
        % {"user": actor},
    )
    if position == "before":
        _move_task(task, state=TaskState.WAITING, after=new)
    ctx.action(
        ActionKind.ADD_SIGNER, task=task, node=node, comment=comment, detail={"user": str(user), "position": position}
    )
    ctx.emit(
        events.ApprovalSignerAdded,
        task_id=task.pk,
        new_task_id=new.pk,
        user_id=user.pk,
        position=position,
        changes={"node": task.step.node_name, "user": str(user), "position": position, "comment": comment},
    )
    if new.state == TaskState.PENDING:
        engine.task_created(ctx, new, node)
    return new


@transaction.atomic
def end_for_subject(*, actor, subject_type: str, subject_id, comment: str = "") -> ApprovalInstance | None:
    """The object left approval on its own side (an order cancelled while in approval, or while
    returned for revision): its running or returned approval ends as withdrawn, its open tasks are
    cancelled, so nobody is left with a task that can no longer be decided. The subject is not
    called back (it has already moved). The owning context calls this inside its own transaction;
    answers the instance ended, or None when there was none."""
    existing = current_instance(subject_type, subject_id)
    if existing is None:
        return None
    instance = lock_instance(existing.pk)
    if instance.state not in (InstanceState.RUNNING, InstanceState.RETURNED):
        return None
    ctx = _context(actor, instance, comment=_clean_comment(comment))
    engine.cancel_active(ctx)
    instance.state = InstanceState.WITHDRAWN
    instance.finished_at = ctx.now
    instance.resume_node = ""
    instance.save(update_fields=["state", "finished_at", "resume_node", "updated_at"])
    ctx.action(ActionKind.WITHDRAW, comment=ctx.comment, detail={"cause": "subject_ended"})
    ctx.emit(events.ApprovalWithdrawn, changes={"comment": ctx.comment, "cause": "subject_ended"})
    return instance


@transaction.atomic
def withdraw_approval(*, actor, instance_id, comment: str = "") -> ApprovalInstance:
    """The initiator takes the request back before anyone has decided (撤回)."""
    instance = _lock_instance(actor, instance_id)
    if instance.initiator_id != actor.pk:
        raise ApprovalPermissionDenied(_("Only the initiator may withdraw this request."))
    if instance.state != InstanceState.RUNNING:
        raise ApprovalConflict(
            _("This approval is %(state)s; nothing to withdraw.") % {"state": instance.get_state_display()}
        )
    if instance.decided:
        raise ApprovalConflict(_("An approver has already decided; it can no longer be withdrawn."))
    comment = _clean_comment(comment)
    ctx = _context(actor, instance, comment=comment)
    engine.cancel_active(ctx)
    instance.state = InstanceState.WITHDRAWN
    instance.finished_at = ctx.now
    instance.save(update_fields=["state", "finished_at", "updated_at"])
    ctx.action(ActionKind.WITHDRAW, comment=comment)
    ctx.emit(events.ApprovalWithdrawn, changes={"comment": comment})
    ctx.adapter.on_outcome(
        actor=actor, subject_id=instance.subject_id, outcome="withdrawn", comment=comment, instance=instance
    )
    return instance


@transaction.atomic
def nudge_approval(*, actor, instance_id) -> list[ApprovalTask]:
    """Remind the pending approvers (催办); each task at most once an hour."""
    instance = _lock_instance(actor, instance_id)
    if not policies.can_nudge(actor, instance):
        if instance.state != InstanceState.RUNNING:
            raise ApprovalConflict(
                _("This approval is %(state)s; there is no one to nudge.") % {"state": instance.get_state_display()}
            )
        raise ApprovalPermissionDenied(_("Only the initiator or an administrator may nudge."))
    now = timezone.now()
    pending = list(instance.tasks.filter(state=TaskState.PENDING).select_related("assignee"))
    due = [t for t in pending if t.nudged_at is None or now - t.nudged_at >= NUDGE_INTERVAL]
    if not due:
        last = max((t.nudged_at for t in pending if t.nudged_at), default=None)
        raise ApprovalConflict(
            _("The approvers were nudged at %(time)s; nudge again after an hour.")
            % {"time": timezone.localtime(last).strftime("%H:%M") if last else "-"}
        )
    ApprovalTask.objects.filter(pk__in=[t.pk for t in due]).update(nudged_at=now)
    ctx = _context(actor, instance)
    ctx.action(ActionKind.NUDGE, detail={"users": [str(t.assignee) for t in due]})
    ctx.emit(
        events.ApprovalNudged,
        task_ids=tuple(str(t.pk) for t in due),
        changes={"users": [str(t.assignee) for t in due]},
    )
    return due


@_with_cleanup
@transaction.atomic
def comment_approval(*, actor, instance_id, comment: str, attachments=(), stored=None):
    """A comment (with files) on an approval by anyone who may see it and is not read-only."""
    instance = _lock_instance(actor, instance_id)
    if not policies.can_comment(actor, instance):
        raise ApprovalPermissionDenied(_("You may not comment on this approval."))
    comment = _clean_comment(comment, required=not attachments)
    ctx = _context(actor, instance, comment=comment)
    action = ctx.action(ActionKind.COMMENT, comment=comment)
    stored.extend(_store_attachments(action, attachments))
    ctx.emit(events.ApprovalCommented, attachments=len(attachments or ()), changes={"comment": comment})
    return action


@transaction.atomic
def read_cc(*, actor, task_id) -> ApprovalTask:
    """The recipient of a CC (抄送) marks it read (opening it on the page does). Reading it again
    changes nothing and records nothing; another user's CC answers 403, a task that is not a CC 409."""
    from .selectors import access_task

    task = access_task(actor, task_id)
    if task.kind != TaskKind.CC:
        raise ApprovalConflict(_("Only a copy (CC) is marked read; this task is decided instead."))
    if task.assignee_id != actor.pk:
        raise ApprovalPermissionDenied(_("This copy was sent to %(user)s, not to you.") % {"user": task.assignee})
    if task.state != TaskState.CC:
        return task
    now = timezone.now()
    if not _mark_read(TaskState.READ, now, now, task.pk, TaskState.CC):
        return task  # read at the same moment in another request
    task.state, task.decided_at = TaskState.READ, now
    instance = task.instance
    _context(actor, instance).emit(
        events.ApprovalCcRead,
        task_id=task.pk,
        audit_action="approvals.cc_read",
        changes={"node": task.step.node_name, "read_at": now.isoformat()},
    )
    return task


_mark_read = Update(
    ApprovalTask, set=("state", "decided_at", "updated_at"), where=("id", "state"), increment=("version",)
)


# --- timers --------------------------------------------------------------------------------------


def process_timers(*, now=None) -> dict[str, int]:
    """Send due reminders and apply timeout actions. Each step in its own transaction, idempotent:
    a step is reminded once and timed out once however often this runs (the scheduler calls it
    every minute). Timeout actions are done by the system, recorded with the rule that fired."""
    now = now or timezone.now()
    counts = {"reminded": 0, "timed_out": 0}
    remind_ids = list(
        ApprovalStep.objects.filter(
            state=StepState.ACTIVE, remind_at__lte=now, reminded_at__isnull=True, instance__state=InstanceState.RUNNING
        ).values_list("pk", flat=True)[:500]
    )
    for step_id in remind_ids:
        counts["reminded"] += _remind(step_id, now)
    due_ids = list(
        ApprovalStep.objects.filter(
            state=StepState.ACTIVE, due_at__lte=now, timed_out_at__isnull=True, instance__state=InstanceState.RUNNING
        ).values_list("pk", flat=True)[:500]
    )
    for step_id in due_ids:
        counts["timed_out"] += _time_out(step_id, now)
    return counts


def _locked_step(step_id):
    step = ApprovalStep.objects.filter(pk=step_id).values_list("instance_id", flat=True).first()
    if step is None:
        return None, None
    instance = lock_instance(step)
    return instance, ApprovalStep.objects.get(pk=step_id)


@transaction.atomic
def _remind(step_id, now) -> int:
    instance, step = _locked_step(step_id)
    if step is None or step.state != StepState.ACTIVE or step.reminded_at is not None:
        return 0
    if instance.state != InstanceState.RUNNING:
        return 0
    step.reminded_at = now
    step.save(update_fields=["reminded_at"])
    ctx = _context(None, instance, now=now)
    pending = list(step.tasks.filter(state=TaskState.PENDING).select_related("assignee"))
    node = ctx.flow.node(step.node_id)
    ctx.action(ActionKind.REMIND, node=node, detail={"users": [str(t.assignee) for t in pending]})
    ctx.emit(
        events.ApprovalTaskReminded,
        task_ids=tuple(str(t.pk) for t in pending),
        node_id=step.node_id,
        changes={"node": step.node_name, "users": [str(t.assignee) for t in pending]},
    )
    return 1


TIMEOUT_ACTIONS = {
    "none": _lazy("remind the approvers"),
    "escalate": _lazy("escalate to the manager"),
    "approve": _lazy("approve automatically"),
    "reject": _lazy("reject automatically"),
}


@transaction.atomic
def _time_out(step_id, now) -> int:
    """The SLA of a step ran out: do what its node says, once. The rule that fired (node, SLA,
    action) is on the timeline entry, made by the system (no actor)."""
    instance, step = _locked_step(step_id)
    if step is None or step.state != StepState.ACTIVE or step.timed_out_at is not None:
        return 0
    if instance.state != InstanceState.RUNNING:
        return 0
    step.timed_out_at = now
    step.save(update_fields=["timed_out_at"])
    ctx = _context(None, instance, now=now)
    node = ctx.flow.node(step.node_id)
    rule = _("SLA of %(hours)s working hours at “%(node)s” exceeded; on timeout: %(action)s") % {
        "hours": node.sla_hours,
        "node": node.name,
        "action": TIMEOUT_ACTIONS[node.on_timeout],
    }
    ctx.emit(events.ApprovalTimedOut, node_id=step.node_id, action=node.on_timeout, changes={"rule": rule})
    if node.on_timeout == "none":
        pending = list(step.tasks.filter(state=TaskState.PENDING).select_related("assignee"))
        users = [str(t.assignee) for t in pending]
        ctx.action(ActionKind.REMIND, node=node, detail={"rule": rule, "users": users}, system=True)
    elif node.on_timeout == "escalate":
        added = _escalate(ctx, step, node)
        ctx.action(ActionKind.ESCALATE, node=node, detail={"rule": rule, "to": added}, system=True)
    else:
        engine.close_open_tasks(step, now)
        step.state = StepState.APPROVED if node.on_timeout == "approve" else StepState.REJECTED
        step.finished_at = now
        step.save(update_fields=["state", "finished_at"])
        instance.decided = True
        instance.save(update_fields=["decided", "updated_at"])
        ctx.action(
            ActionKind.AUTO_APPROVE if node.on_timeout == "approve" else ActionKind.AUTO_REJECT,
            node=node,
            detail={"rule": rule},
            system=True,
        )
        ctx.comment = rule
        if node.on_timeout == "approve":
            enter(ctx, ctx.flow.elements[step.node_id].next)
        else:
            engine.complete(ctx, "rejected", comment=rule, system=True)
    return 1


def _escalate(ctx: Context, step: ApprovalStep, node) -> list[str]:
    """Each late approver's manager (or that manager's deputy) is asked to decide. In any and
    quorum modes the manager decides alongside; in all and sequence modes in place of the late
    approver, whose task ends (a sequence continues after the manager). A late approver without a
    manager, or whose manager already decides here, keeps the task."""
    instance = ctx.instance
    on = timezone.localdate(ctx.now)
    replace = step.mode in ("all", "sequence")
    added = []
    pending = list(step.tasks.filter(state=TaskState.PENDING).select_related("assignee", "assignee__org_unit"))
    for task in pending:
        managers = [m for m in managers_of(task.assignee, 1) if m.pk != instance.initiator_id]
        if not managers:
            continue
        manager = managers[0]
        assignee = engine.deputy_of(manager, initiator=instance.initiator, on=on)
        if step.tasks.filter(assignee=assignee, state__in=engine.OPEN_TASK_STATES).exists():
            continue
        new = ApprovalTask.objects.create(
            instance=instance,
            step=step,
            kind=task.kind,
            state=TaskState.PENDING,
            assignee=assignee,
            on_behalf_of=manager if assignee.pk != manager.pk else None,
            after=task.after if replace else None,
            position=task.position,
            reason=_("escalated: %(user)s did not decide in time") % {"user": task.assignee},
        )
        if replace:
            ApprovalTask.objects.filter(pk=task.pk, state=TaskState.PENDING).update(
                state=TaskState.CANCELLED, decided_at=ctx.now, version=F("version") + 1
            )
            ApprovalTask.objects.filter(after=task).exclude(pk=new.pk).update(after=new)
        added.append(str(assignee))
        engine.task_created(ctx, new, node)
    return added


# --- migration -----------------------------------------------------------------------------------


def _migration_pair(actor, from_id, to_id):
    if not policies.can_migrate(actor):
        raise ApprovalPermissionDenied(_("Only an administrator may move running approvals."))
    source = access_definition(actor, from_id)
    target = access_definition(actor, to_id)
    if target.key != source.key or target.status != DefinitionStatus.PUBLISHED or target.pk == source.pk:
        raise ApprovalInputInvalid(
            errors=[{"field": "to", "message": _("Move to the published revision of the same flow.")}]
        )
    return source, target


def _parallel_path(document, node_id: str) -> tuple | None:
    """Where a node sits among parallel blocks: ((block id, branch id, branches), ...) from the
    outside in; None when the document has no such node. Joins count arrivals per block and branch,
    so a task may stay on a new revision only where this is the same."""
    blocks = {n.id: n for n, _inside, _path in walk_nodes(document.nodes) if n.type == "parallel"}
    for node, _inside, path in walk_nodes(document.nodes):
        if node.id == node_id:
            return tuple((block, branch, len(blocks[block].branches)) for block, branch in path if block in blocks)
    return None


def _moves(instance: ApprovalInstance, target: ApprovalDefinition) -> tuple[list[dict], bool]:
    """Where each active approval step of `instance` goes on `target`: it stays when the node (same
    id) is an approval node there, in the same place among parallel blocks; otherwise the instance
    restarts at the start of `target`."""
    flow = engine.flow_of(target)
    old, new = engine.document_of(instance.definition), engine.document_of(target)
    moves, restart = [], False
    for step in instance.steps.filter(state=StepState.ACTIVE, kind="approval"):
        element = flow.elements.get(step.node_id)
        stays = (
            element is not None
            and element.kind == "approval"
            and _parallel_path(old, step.node_id) == _parallel_path(new, step.node_id)
        )
        moves.append(
            {
                "node_id": step.node_id,
                "from": step.node_name,
                "to": element.node.name if stays else None,
                "stays": stays,
            }
        )
        restart = restart or not stays
    return moves, restart


def preview_migration(*, actor, from_id, to_id) -> list[dict]:
    """For each running instance on `from_id`, oldest first: where its active tasks go on `to_id`
    ({"instance", "moves": [{node_id, from, to, stays}], "restart"}). A task whose node (same id)
    is an approval node of the new revision, in the same place among parallel blocks, stays on it;
    otherwise the instance starts the new revision from the beginning. Writes nothing."""
    source, target = _migration_pair(actor, from_id, to_id)
    rows = []
    running = ApprovalInstance.objects.filter(definition=source, state=InstanceState.RUNNING).select_related(
        "definition"
    )
    for instance in running.order_by("started_at"):
        moves, restart = _moves(instance, target)
        rows.append({"instance": instance, "moves": moves, "restart": restart})
    return rows


@transaction.atomic
def migrate_instances(*, actor, from_id, to_id, instance_ids=None) -> list[dict]:
    """Move running instances to a newer published revision (all of them, or those named), as
    preview_migration shows: active tasks stay where their node still exists, otherwise the
    instance restarts on the new revision. Each instance is locked and its moves worked out again
    under the lock (a decision may have landed since the preview); instances no longer running on
    `from_id` are left alone. Each move is on the timeline, audited, and an outbox event."""
    source, target = _migration_pair(actor, from_id, to_id)
    wanted = {str(i) for i in instance_ids} if instance_ids else None
    ids = ApprovalInstance.objects.filter(definition=source, state=InstanceState.RUNNING).order_by("started_at")
    moved = []
    for instance_id in ids.values_list("pk", flat=True):
        if wanted is not None and str(instance_id) not in wanted:
            continue
        instance = lock_instance(instance_id)
        if instance.state != InstanceState.RUNNING or instance.definition_id != source.pk:
            continue
        moves, restart = _moves(instance, target)
        instance.definition = target
        instance.save(update_fields=["definition", "updated_at"])
        ctx = _context(actor, instance)
        ctx.action(ActionKind.MIGRATE, detail={"from": str(source), "to": str(target), "restart": restart})
        ctx.emit(
            events.ApprovalMigrated,
            from_definition_id=source.pk,
            to_definition_id=target.pk,
            changes={"from": str(source), "to": str(target), "restart": restart, "moves": moves},
        )
        if restart:
            engine.cancel_active(ctx)
            instance.round += 1
            instance.save(update_fields=["round", "updated_at"])
            enter(ctx, ctx.flow.elements["start"].next, reason=_("moved to %(flow)s") % {"flow": target})
        else:
            for step in instance.steps.filter(state=StepState.ACTIVE, kind="approval"):
                step.node_name = ctx.flow.node(step.node_id).name
                step.save(update_fields=["node_name"])
        moved.append({"instance_id": str(instance.pk), "restart": restart})
    return moved


# --- simulation ----------------------------------------------------------------------------------


def simulate(
    *, actor, subject_type: str, subject_id, definition_id=None, picked: dict | None = None, initiator=None
) -> dict:
    """Who would approve this object and in what order: on the flow that would be chosen (or on
    `definition_id`, e.g. a draft), without writing anything. The route is walked for the person
    who submits: `initiator` if given, else the initiator of the object's current approval, else
    the object's creator (the self-approval guard applies to them, not to whoever looks)."""
    adapter = get_adapter(subject_type)
    subject = adapter.load(subject_id)
    if not adapter.can_view(actor, subject):
        raise adapter.not_found()
    if definition_id:
        definition, why = access_definition(actor, definition_id), _("chosen for the simulation")
    else:
        definition, why = select_definition(subject_type, subject.facts)
    if initiator is None:
        running = current_instance(subject_type, subject.id)
        if running is not None:
            initiator = running.initiator
        elif hasattr(adapter, "initiator_of"):
            initiator = adapter.initiator_of(subject)
    flow = engine.flow_of(definition)  # cached per (id, version): a draft's every edit bumps its version
    fields = {f.name: f for f in adapter.fields()}
    stages = engine.plan_route(
        flow,
        subject=subject,
        initiator=initiator or actor,
        picked={str(k): str(v) for k, v in (picked or {}).items()},
        fields=fields,
        on=timezone.localdate(),
    )
    return {"definition": definition, "why": why, "stages": stages, "subject": subject}


def dry_run(*, actor, definition_id, limit: int = 50) -> dict:
    """Route the last `limit` objects through a (draft) definition and through the flow chosen for
    them today; list each with both routes and whether they differ, and the draft's problems
    (check_definition). Writes nothing."""
    if not policies.can_manage_definitions(actor):
        raise ApprovalPermissionDenied(_("Only an administrator may dry-run flows."))
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        limit = 0
    if not 1 <= limit <= 500:
        raise ApprovalInputInvalid(errors=[{"field": "limit", "message": _("Choose from 1 to 500 orders.")}])
    draft = access_definition(actor, definition_id)
    problems = check_definition(draft)
    try:
        draft_flow = compile_flow(parse_document(draft.document))
    except DocumentInvalid as exc:
        raise DefinitionInvalid(errors=exc.errors)
    adapter = get_adapter(draft.subject_type)
    fields = {f.name: f for f in adapter.fields()}
    current = published_definitions(draft.subject_type)  # by priority, as submission chooses
    published = [d for d in current if d.key != draft.key]
    rows = []
    today = timezone.localdate()
    for subject in adapter.recent(limit):
        initiator = adapter.initiator_of(subject) if hasattr(adapter, "initiator_of") else actor

        def route(flow, subject=subject, initiator=initiator):
            return [
                {"node": s["name"], "users": [str(a["user"]) for a in s["approvers"]]}
                for s in engine.plan_route(
                    flow, subject=subject, initiator=initiator, picked={}, fields=fields, on=today
                )
            ]

        try:
            now_def, _why = select_definition(draft.subject_type, subject.facts, candidates=current)
            now_route = route(engine.flow_of(now_def))
            now_name = str(now_def)
        except NoApplicableFlow:
            now_route, now_name = [], ""
        # With the draft in place of its key's published revision:
        candidates = sorted([draft, *published], key=lambda d: (d.priority, d.key))
        try:
            new_def, _why = select_definition(draft.subject_type, subject.facts, candidates=candidates)
            new_route = route(draft_flow if new_def.pk == draft.pk else engine.flow_of(new_def))
            new_name = str(new_def)
        except NoApplicableFlow:
            new_route, new_name = [], ""
        rows.append(
            {
                "subject": subject,
                "current_flow": now_name,
                "current": now_route,
                "draft_flow": new_name,
                "draft": new_route,
                "differs": now_route != new_route,
            }
        )
    return {"rows": rows, "problems": problems}
