"""Every read of approvals starts from the actor: definitions for those who may read them,
instances of objects the actor may see (or holds a task on), and the actor's own task boxes."""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext as _

from eoms.accounts.selectors import read_only_condition
from eoms.core.rows import Select, _convert, _readers

from .errors import DefinitionNotFound, InstanceNotFound, TaskNotFound
from .models import (
    ApprovalDefinition,
    ApprovalInstance,
    ApprovalStep,
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
    "decision_task",
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


def decision_task(actor, task_id) -> ApprovalTask | None:
    """The actor's own task, read to decide it, or None when the actor holds no such task (a
    malformed id included). Its instance is locked first (SELECT … FOR UPDATE of that row only,
    found through the task; on SQLite the IMMEDIATE transaction already holds the write lock), so
    that what follows is read after the lock: in one statement, the task with its step, the user
    it was meant for and its instance (with flow and initiator, all cached on the objects), and
    two facts kept on the task: `peers`, how many other tasks its step has (0: the step's outcome
    follows from this task alone), and `actor_read_only`, whether its assignee (the actor) holds a
    read-only role. The task's own state is compare-and-set when it moves."""
    return _decision_read(task_id, getattr(actor, "pk", None))


class _DecisionRead:
    """The statements of decision_task, built once per database vendor from the models' metadata
    (as eoms.core.rows builds its own; that module has no way to add computed columns)."""

    # (path, model, parent path): the task and the rows it refers to, each read once.
    parts = (
        ("", ApprovalTask, None),
        ("step", ApprovalStep, ""),
        ("on_behalf_of", get_user_model(), ""),
        ("instance", ApprovalInstance, ""),
        ("instance__definition", ApprovalDefinition, "instance"),
        ("instance__initiator", get_user_model(), "instance"),
    )

    def __init__(self):
        self._plans: dict[str, tuple] = {}

    def _plan(self, connection) -> tuple:
        plan = self._plans.get(connection.vendor)
        if plan is None:
            plan = self._plans[connection.vendor] = self._build(connection)
        return plan

    def _build(self, connection) -> tuple:
        qn = connection.ops.quote_name
        task, instance = ApprovalTask._meta, ApprovalInstance._meta
        aliases, columns, joins, groups = {}, [], [], []
        for i, (path, model, parent) in enumerate(self.parts):
            alias = aliases[path] = f"t{i}"
            fk = None
            if parent is not None:
                parent_model = next(m for p, m, _pp in self.parts if p == parent)
                fk = parent_model._meta.get_field(path.rpartition("__")[2])
                join = "LEFT OUTER JOIN" if fk.null else "INNER JOIN"
                joins.append(
                    f"{join} {qn(model._meta.db_table)} {alias} "
                    f"ON {aliases[parent]}.{qn(fk.column)} = {alias}.{qn(fk.target_field.column)}"
                )
            fields = list(model._meta.concrete_fields)
            columns += [f"{alias}.{qn(f.column)}" for f in fields]
            readers = _readers(fields, connection)
            groups.append((path, parent, fk, model, [f.attname for f in fields], fields.index(model._meta.pk), readers))
        step_col, id_col = qn(task.get_field("step").column), qn(task.pk.column)
        assignee = qn(task.get_field("assignee").column)
        read_only, role_names = read_only_condition(connection, f"t0.{assignee}")
        peers = (
            f"(SELECT COUNT(*) FROM {qn(task.db_table)} p "  # noqa: S608
            f"WHERE p.{step_col} = t0.{step_col} AND p.{id_col} <> t0.{id_col})"
        )
        sql = f"SELECT {', '.join(columns)}, {peers}, {read_only} FROM {qn(task.db_table)} t0 {' '.join(joins)} "  # noqa: S608
        sql += f"WHERE t0.{id_col} = %s AND t0.{assignee} = %s"
        lock = None
        if connection.features.has_select_for_update:
            lock = (
                f"SELECT i.{qn(instance.pk.column)} FROM {qn(instance.db_table)} i WHERE i.{qn(instance.pk.column)} = "  # noqa: S608
                f"(SELECT s.{qn(task.get_field('instance').column)} FROM {qn(task.db_table)} s "
                f"WHERE s.{id_col} = %s AND s.{assignee} = %s) FOR UPDATE"
            )
        return sql, role_names, lock, groups

    def __call__(self, task_id, user_id) -> ApprovalTask | None:
        if user_id is None:
            return None
        connection = connections[router.db_for_write(ApprovalTask)]
        sql, role_names, lock, groups = self._plan(connection)
        try:
            params = [
                ApprovalTask._meta.pk.get_db_prep_value(task_id, connection),
                ApprovalTask._meta.get_field("assignee").get_db_prep_value(user_id, connection),
            ]
        except (ValidationError, ValueError, TypeError):
            return None
        with connection.cursor() as cursor:
            if lock is not None:
                cursor.execute(lock, params)
                if cursor.fetchone() is None:
                    return None
            cursor.execute(sql, [*role_names, *params])
            row = cursor.fetchone()
        if row is None:
            return None
        made, start = {}, 0
        for path, parent, fk, model, attnames, pk_index, readers in groups:
            values = row[start : start + len(readers)]
            start += len(readers)
            obj = None
            if values[pk_index] is not None:
                obj = model.from_db(connection.alias, attnames, _convert(values, readers, connection))
            made[path] = obj
            if fk is not None:
                fk.set_cached_value(made[parent], obj)
        task = made[""]
        task.step.instance = task.instance
        task.peers, task.actor_read_only = row[start], bool(row[start + 1])
        return task


_decision_read = _DecisionRead()


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
