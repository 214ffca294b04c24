"""Events of the approval engine, in the past tense; each carries the instance id (the aggregate,
so one instance's events are delivered in order) and what a notification needs."""

import uuid
from dataclasses import dataclass

from eoms.core.events import DomainEvent

__all__ = [
    "DefinitionSaved",
    "DefinitionPublished",
    "ApprovalStarted",
    "ApprovalTaskCreated",
    "ApprovalTaskDecided",
    "ApprovalTaskTransferred",
    "ApprovalSignerAdded",
    "ApprovalReturned",
    "ApprovalWithdrawn",
    "ApprovalNudged",
    "ApprovalCommented",
    "ApprovalTaskReminded",
    "ApprovalTimedOut",
    "ApprovalCcSent",
    "ApprovalCcRead",
    "ApprovalCompleted",
    "ApprovalMigrated",
]


@dataclass(frozen=True, kw_only=True)
class DefinitionSaved(DomainEvent):
    event_type = "approvals.definition_saved"
    aggregate_type = "approvals.definition"
    id: uuid.UUID
    key: str
    revision: int


@dataclass(frozen=True, kw_only=True)
class DefinitionPublished(DomainEvent):
    event_type = "approvals.definition_published"
    aggregate_type = "approvals.definition"
    id: uuid.UUID
    key: str
    revision: int


@dataclass(frozen=True, kw_only=True)
class _InstanceEvent(DomainEvent):
    aggregate_type = "approvals.instance"
    aggregate_field = "instance_id"
    instance_id: uuid.UUID
    subject_type: str
    subject_id: str
    subject_repr: str


@dataclass(frozen=True, kw_only=True)
class ApprovalStarted(_InstanceEvent):
    event_type = "approvals.approval_started"
    definition_id: uuid.UUID
    initiator_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class ApprovalTaskCreated(_InstanceEvent):
    """A decision is asked of `assignee_id` (for `on_behalf_of_id` when delegated). Notifications
    tell the assignee."""

    event_type = "approvals.task_created"
    task_id: uuid.UUID
    node_id: str
    assignee_id: uuid.UUID
    on_behalf_of_id: uuid.UUID | None
    due_at: str | None


@dataclass(frozen=True, kw_only=True)
class ApprovalTaskDecided(_InstanceEvent):
    event_type = "approvals.task_decided"
    task_id: uuid.UUID
    node_id: str
    decision: str
    by_system: bool = False


@dataclass(frozen=True, kw_only=True)
class ApprovalTaskTransferred(_InstanceEvent):
    event_type = "approvals.task_transferred"
    task_id: uuid.UUID
    new_task_id: uuid.UUID
    to_user_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class ApprovalSignerAdded(_InstanceEvent):
    event_type = "approvals.signer_added"
    task_id: uuid.UUID
    new_task_id: uuid.UUID
    user_id: uuid.UUID
    position: str


@dataclass(frozen=True, kw_only=True)
class ApprovalReturned(_InstanceEvent):
    event_type = "approvals.approval_returned"
    to_node: str  # a node id, or "initiator"


@dataclass(frozen=True, kw_only=True)
class ApprovalWithdrawn(_InstanceEvent):
    event_type = "approvals.approval_withdrawn"


@dataclass(frozen=True, kw_only=True)
class ApprovalNudged(_InstanceEvent):
    event_type = "approvals.approval_nudged"
    task_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ApprovalCommented(_InstanceEvent):
    event_type = "approvals.approval_commented"
    attachments: int


@dataclass(frozen=True, kw_only=True)
class ApprovalTaskReminded(_InstanceEvent):
    event_type = "approvals.task_reminded"
    task_ids: tuple[str, ...]
    node_id: str


@dataclass(frozen=True, kw_only=True)
class ApprovalTimedOut(_InstanceEvent):
    event_type = "approvals.step_timed_out"
    node_id: str
    action: str  # escalate, approve, reject


@dataclass(frozen=True, kw_only=True)
class ApprovalCcSent(_InstanceEvent):
    event_type = "approvals.cc_sent"
    node_id: str
    user_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ApprovalCompleted(_InstanceEvent):
    event_type = "approvals.approval_completed"
    outcome: str  # approved, rejected


@dataclass(frozen=True, kw_only=True)
class ApprovalMigrated(_InstanceEvent):
    event_type = "approvals.approval_migrated"
    from_definition_id: uuid.UUID
    to_definition_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class ApprovalCcRead(_InstanceEvent):
    """A CC (抄送) recipient opened it: the initiator sees who has read their request."""

    event_type = "approvals.cc_read"
    task_id: uuid.UUID
