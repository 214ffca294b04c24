"""Approval definitions (versioned documents), running instances, their steps, tasks and actions."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from eoms.core.models import BaseModel

__all__ = [
    "DefinitionStatus",
    "ApprovalDefinition",
    "InstanceState",
    "ApprovalInstance",
    "StepState",
    "ApprovalStep",
    "TaskState",
    "TaskKind",
    "ApprovalTask",
    "ActionKind",
    "ApprovalAction",
    "ActionAttachment",
]


class DefinitionStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    SUPERSEDED = "superseded", _("Superseded")


class ApprovalDefinition(BaseModel):
    """One revision of an approval flow. Invariants, kept by approvals.services:
    - a published revision never changes; editing it makes a new draft revision of the same key;
    - at most one draft and one published revision per key; publishing supersedes the previous one;
    - instances keep the revision they started on (PROTECT), unless an admin migrates them.
    Which flow applies to an object: among the published revisions of its subject type, the first
    by `priority` whose `applies_when` holds, else the one marked `is_default`."""

    key = models.SlugField(_("key"), max_length=60)
    revision = models.PositiveIntegerField(_("revision"), default=1)
    name = models.CharField(_("name"), max_length=120)
    description = models.TextField(_("description"), blank=True)
    subject_type = models.CharField(_("applies to"), max_length=60, default="orders.order")
    status = models.CharField(
        _("status"), max_length=12, choices=DefinitionStatus.choices, default=DefinitionStatus.DRAFT, db_index=True
    )
    priority = models.PositiveIntegerField(_("priority"), default=100)
    is_default = models.BooleanField(_("default flow"), default=False)
    applies_when = models.JSONField(_("applies when"), null=True, blank=True)
    document = models.JSONField(_("flow"), default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )

    class Meta:
        ordering = ["priority", "key", "-revision"]
        constraints = [models.UniqueConstraint(fields=["key", "revision"], name="approval_definition_revision")]
        verbose_name = _("approval definition")
        verbose_name_plural = _("approval definitions")

    def __str__(self):
        return f"{self.name} v{self.revision}"


class InstanceState(models.TextChoices):
    RUNNING = "running", _("Running")
    RETURNED = "returned", _("Returned for revision")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class ApprovalInstance(BaseModel):
    """One approval of one object on one definition revision. `round` grows each time the flow
    is sent back (return to a node, resubmission), so joins count only this round's arrivals.
    Every change to the instance or its tasks locks this row first: decisions on one instance are
    serialised, which is what makes two simultaneous 会签 approvals count exactly once each."""

    definition = models.ForeignKey(
        ApprovalDefinition, on_delete=models.PROTECT, related_name="instances", verbose_name=_("definition")
    )
    subject_type = models.CharField(max_length=60)
    subject_id = models.CharField(max_length=64, db_index=True)
    subject_repr = models.CharField(_("object"), max_length=200)
    project_id = models.UUIDField(null=True, blank=True, db_index=True)
    initiator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("initiator")
    )
    state = models.CharField(
        _("state"), max_length=12, choices=InstanceState.choices, default=InstanceState.RUNNING, db_index=True
    )
    round = models.PositiveIntegerField(default=1)
    picked = models.JSONField(default=dict, blank=True)  # node id -> user id picked at submit
    resume_node = models.CharField(max_length=40, blank=True)  # where a returned instance continues
    decided = models.BooleanField(default=False)  # any decision yet (withdrawal is possible until then)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["subject_type", "subject_id", "state"], name="approval_subject_idx")]
        verbose_name = _("approval")
        verbose_name_plural = _("approvals")

    def __str__(self):
        return f"{self.subject_repr} ({self.state})"


class StepState(models.TextChoices):
    ACTIVE = "active", pgettext_lazy("approval step", "In progress")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    SKIPPED = "skipped", _("Skipped")
    CANCELLED = "cancelled", _("Cancelled")
    PASSED = "passed", _("Passed")


class ApprovalStep(models.Model):
    """One visit of the flow to an element: an approval node waiting for its tasks, a CC node, a
    branch taken (with the reason), or a branch of a parallel block arriving at its join."""

    id = models.BigAutoField(primary_key=True)
    instance = models.ForeignKey(ApprovalInstance, on_delete=models.CASCADE, related_name="steps")
    node_id = models.CharField(max_length=60)
    node_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=12)  # approval, cc, split, join
    round = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=12, choices=StepState.choices, default=StepState.ACTIVE, db_index=True)
    mode = models.CharField(max_length=12, blank=True)
    needed = models.PositiveIntegerField(default=1)
    reason = models.CharField(max_length=300, blank=True)  # why the flow came here ("amount ≥ 500,000")
    branch_id = models.CharField(max_length=60, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    remind_at = models.DateTimeField(null=True, blank=True, db_index=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    timed_out_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.node_id} ({self.state})"


class TaskState(models.TextChoices):
    PENDING = "pending", _("Pending")
    WAITING = "waiting", _("Waiting")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    TRANSFERRED = "transferred", _("Transferred")
    CANCELLED = "cancelled", _("Not needed")
    CC = "cc", _("CC")
    READ = "read", _("Read")


class TaskKind(models.TextChoices):
    APPROVER = "approver", _("Approver")
    ADDED = "added", _("Added signer")
    CC = "cc", _("CC")


class ApprovalTask(BaseModel):
    """A decision (or a CC) asked of one user. Only a PENDING task can be decided; a WAITING one
    becomes pending when `after` is approved (sequence mode, signers added before or after).
    `on_behalf_of` is the user the task was meant for when a delegation sent it to `assignee`."""

    instance = models.ForeignKey(ApprovalInstance, on_delete=models.CASCADE, related_name="tasks")
    step = models.ForeignKey(ApprovalStep, on_delete=models.CASCADE, related_name="tasks")
    kind = models.CharField(max_length=10, choices=TaskKind.choices, default=TaskKind.APPROVER)
    state = models.CharField(_("state"), max_length=12, choices=TaskState.choices, db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_tasks", verbose_name=_("assignee")
    )
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    after = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="followers")
    position = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=300, blank=True)  # why this user ("PM of project P-01")
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    nudged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["assignee", "state"], name="approval_task_inbox_idx")]
        verbose_name = _("approval task")
        verbose_name_plural = _("approval tasks")

    def __str__(self):
        return f"{self.assignee_id}: {self.state}"


class ActionKind(models.TextChoices):
    SUBMIT = "submit", _("Submitted")
    RESUBMIT = "resubmit", _("Resubmitted")
    APPROVE = "approve", _("Approved")
    REJECT = "reject", _("Rejected")
    RETURN = "return", _("Returned")
    TRANSFER = "transfer", _("Transferred")
    ADD_SIGNER = "add_signer", _("Added a signer")
    WITHDRAW = "withdraw", _("Withdrawn")
    NUDGE = "nudge", _("Nudged")
    COMMENT = "comment", _("Commented")
    REMIND = "remind", _("Reminder sent")
    ESCALATE = "escalate", _("Escalated")
    AUTO_APPROVE = "auto_approve", _("Approved automatically")
    AUTO_REJECT = "auto_reject", _("Rejected automatically")
    CC = "cc", _("Copied")
    MIGRATE = "migrate", _("Moved to a new flow version")
    COMPLETE = "complete", _("Completed")


class ApprovalAction(models.Model):
    """The timeline of an instance: everything anyone (or the system, actor empty) did to it."""

    id = models.BigAutoField(primary_key=True)
    instance = models.ForeignKey(ApprovalInstance, on_delete=models.CASCADE, related_name="actions")
    task = models.ForeignKey(ApprovalTask, on_delete=models.SET_NULL, null=True, blank=True, related_name="actions")
    kind = models.CharField(max_length=16, choices=ActionKind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True)
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    node_id = models.CharField(max_length=60, blank=True)
    node_name = models.CharField(max_length=100, blank=True)
    comment = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.kind} {self.node_id}"


def _attachment_path(instance, filename):
    return f"approvals/{instance.action.instance_id}/{instance.id}"


class ActionAttachment(BaseModel):
    """A file given with an action (a comment, a rejection). Type recognised from content."""

    action = models.ForeignKey(ApprovalAction, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=_attachment_path, max_length=300)
    original_name = models.CharField(_("file name"), max_length=200)
    content_type = models.CharField(max_length=120)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)

    def __str__(self):
        return self.original_name
