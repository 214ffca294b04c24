"""Every read of approvals starts from the actor: definitions for those who may read them,
instances of objects the actor may see (or holds a task on), and the actor's own task boxes."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext as _

from eoms.core.rows import Select

from .errors import DefinitionNotFound, InstanceNotFound, TaskNotFound
from .models import (
    ApprovalDefinition,
    ApprovalInstance,
    ApprovalTask,
    DefinitionStatus,
    InstanceState,
    TaskKind,
    TaskState,
)
from .policies import can_view_definitions
from .subjects import get_adapter

__all__ = [
    "TASK_BOXES",
    "TaskFilters",
    "list_definitions",
    "access_definition",
    "published_definitions",
    "definition_revisions",
    "draft_of",
    "access_instance",
    "access_task",
    "own_task",
    "can_view_instance",
    "has_task_on",
    "list_tasks",
    "task_counts",
    "instances_of",
    "current_instance",
    "instance_timeline",
    "pending_task_counts",
    "lock_instance",
]

TASK_BOXES = ("pending", "done", "cc", "delegated")


def list_definitions(*, actor, subject_type: str | None = None, status: str | None = None) -> QuerySet:
    if not can_view_definitions(actor):
        return ApprovalDefinition.objects.none()
    qs = ApprovalDefinition.objects.all().order_by("priority", "key", "-revision")
    if subject_type:
        qs = qs.filter(subject_type=subject_type)
    if status:
        qs = qs.filter(status=status)
    return qs


def access_definition(actor, definition_id, *, for_update: bool = False) -> ApprovalDefinition:
    qs = list_definitions(actor=actor)
    if for_update:
        qs = qs.select_for_update()
    try:
        definition = qs.filter(pk=definition_id).first()
    except (ValueError, TypeError, ValidationError):
        definition = None
    if definition is None:
        raise DefinitionNotFound(_("No such approval flow."))
    return definition


def definition_revisions(*, actor, key: str) -> QuerySet:
    """Every revision of one flow, newest first, for whoever may read flows."""
    return list_definitions(actor=actor).filter(key=key).order_by("-revision")


def draft_of(*, actor, key: str) -> ApprovalDefinition | None:
    """The draft revision of a flow, if it has one."""
    return definition_revisions(actor=actor, key=key).filter(status=DefinitionStatus.DRAFT).first()


def published_definitions(subject_type: str) -> list[ApprovalDefinition]:
    """The published flows for a type of object, by priority (read on every submission)."""
    return _published.all(subject_type, DefinitionStatus.PUBLISHED)


_published = Select(ApprovalDefinition, where=("subject_type", "status"), order_by=("priority", "key"))


def has_task_on(actor, subject_type: str, subject_id) -> bool:
    """Holding (or having held) a task or CC on an object lets a user see it, even outside their
    projects: a general manager approves orders of projects they are not a member of."""
    if not getattr(actor, "is_authenticated", False):
        return False
    return ApprovalTask.objects.filter(
        assignee=actor, instance__subject_type=subject_type, instance__subject_id=str(subject_id)
    ).exists()


def can_view_instance(actor, instance: ApprovalInstance) -> bool:
    adapter = get_adapter(instance.subject_type)
    try:
        subject = adapter.load(instance.subject_id)
    except Exception:  # the object is gone or unreadable: nobody sees its approval
        return False
    return adapter.can_view(actor, subject) or has_task_on(actor, instance.subject_type, instance.subject_id)


def access_instance(actor, instance_id, *, for_update: bool = False) -> ApprovalInstance:
    """An instance the actor may see (NotFound otherwise, also for a malformed id). With
    `for_update` the row is locked: every change to an instance serialises on it."""
    try:
        instance = lock_instance(instance_id) if for_update else _instances().filter(pk=instance_id).first()
    except (ValueError, TypeError, ValidationError):
        instance = None
    if instance is None or not can_view_instance(actor, instance):
        raise InstanceNotFound(_("No such approval."))
    return instance


def _instances():
    return ApprovalInstance.objects.select_related("definition", "initiator")


def lock_instance(instance_id) -> ApprovalInstance | None:
    """Lock one instance row (SELECT … FOR UPDATE of that row only) and read it with its definition
    and initiator. The lock is taken without joins: a join would lock the definition and user rows
    too (and MariaDB has no FOR UPDATE OF), serialising every decision on every instance of a flow.
    On SQLite there are no row locks: its IMMEDIATE transaction holds the database's write lock."""
    return _lock_instance.first(instance_id)


_lock_instance = Select(ApprovalInstance, where=("id",), related=("definition", "initiator"), lock=True)
_own_task = Select(ApprovalTask, where=("id", "assignee"), related=("step", "on_behalf_of"))


def own_task(actor, task_id) -> ApprovalTask | None:
    """The actor's own task with its step (and the user it was meant for), or None: the read a
    decision starts with, narrower than access_task's (no instance, flow or assignee rows), with a
    prepared statement (eoms.core.rows)."""
    return _own_task.first(task_id, getattr(actor, "pk", None))


def access_task(actor, task_id) -> ApprovalTask:
    """A task the actor may see: their own, or any task of an instance they may see."""
    try:
        task = (
            ApprovalTask.objects.select_related("instance", "instance__definition", "step", "assignee", "on_behalf_of")
            .filter(pk=task_id)
            .first()
        )
    except (ValueError, TypeError, ValidationError):
        task = None
    if task is None or (task.assignee_id != getattr(actor, "pk", None) and not can_view_instance(actor, task.instance)):
        raise TaskNotFound(_("No such approval task."))
    return task


@dataclass
class TaskFilters:
    box: str = "pending"
    q: str = ""
    subject_type: str | None = None
    overdue: bool | None = None


def list_tasks(*, actor, filters: TaskFilters | None = None) -> QuerySet:
    """The actor's tasks in one box: pending (waiting for them), done (decided by them), cc
    (copied to them), delegated (given to a deputy on their behalf, or to them on someone's)."""
    from django.utils import timezone

    filters = filters or TaskFilters()
    qs = ApprovalTask.objects.select_related(
        "instance", "instance__initiator", "step", "assignee", "on_behalf_of"
    ).order_by("-created_at")
    if filters.box == "pending":
        qs = qs.filter(assignee=actor, state=TaskState.PENDING, instance__state=InstanceState.RUNNING)
    elif filters.box == "done":
        qs = qs.filter(assignee=actor, state__in=[TaskState.APPROVED, TaskState.REJECTED, TaskState.TRANSFERRED])
        qs = qs.order_by("-decided_at")
    elif filters.box == "cc":
        qs = qs.filter(assignee=actor, kind=TaskKind.CC)
    elif filters.box == "delegated":
        qs = qs.filter(Q(on_behalf_of=actor) | Q(assignee=actor, on_behalf_of__isnull=False))
    else:
        return qs.none()
    if filters.subject_type:
        qs = qs.filter(instance__subject_type=filters.subject_type)
    if filters.q:
        qs = qs.filter(instance__subject_repr__icontains=filters.q.strip()[:100])
    if filters.overdue:
        qs = qs.filter(step__due_at__lt=timezone.now(), state=TaskState.PENDING)
    return qs


def task_counts(*, actor) -> dict[str, int]:
    base = ApprovalTask.objects.filter(assignee=actor)
    counts = base.aggregate(
        pending=Count("id", filter=Q(state=TaskState.PENDING, instance__state=InstanceState.RUNNING)),
        done=Count("id", filter=Q(state__in=[TaskState.APPROVED, TaskState.REJECTED, TaskState.TRANSFERRED])),
        cc=Count("id", filter=Q(kind=TaskKind.CC)),
        unread_cc=Count("id", filter=Q(kind=TaskKind.CC, state=TaskState.CC)),
    )
    counts["delegated"] = ApprovalTask.objects.filter(
        Q(on_behalf_of=actor) | Q(assignee=actor, on_behalf_of__isnull=False)
    ).count()
    return counts


def pending_task_counts() -> dict[str, int]:
    """Pending and overdue approval tasks over the whole company (for /metrics)."""
    from django.utils import timezone

    pending = ApprovalTask.objects.filter(state=TaskState.PENDING, instance__state=InstanceState.RUNNING)
    return {"pending": pending.count(), "overdue": pending.filter(step__due_at__lt=timezone.now()).count()}


def instances_of(subject_type: str, subject_id) -> QuerySet:
    return ApprovalInstance.objects.filter(subject_type=subject_type, subject_id=str(subject_id)).select_related(
        "definition", "initiator"
    )


def current_instance(subject_type: str, subject_id) -> ApprovalInstance | None:
    """The object's running or returned approval (the latest, should data hold two), or None."""
    found = _open_instances.all(subject_type, str(subject_id), [InstanceState.RUNNING, InstanceState.RETURNED])
    return found[-1] if found else None


_open_instances = Select(
    ApprovalInstance,
    where=("subject_type", "subject_id", "state__in"),
    related=("definition", "initiator"),
    order_by=("started_at",),
)


def instance_timeline(instance: ApprovalInstance) -> QuerySet:
    return instance.actions.select_related("actor", "on_behalf_of").prefetch_related("attachments")
