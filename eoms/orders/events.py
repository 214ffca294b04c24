import uuid
from dataclasses import dataclass

from eoms.core.events import DomainEvent

__all__ = ["OrderCreated", "OrderUpdated", "OrderTransitioned", "AttachmentAdded"]


@dataclass(frozen=True, kw_only=True)
class _OrderEvent(DomainEvent):
    aggregate_type = "orders.order"
    aggregate_field = "order_id"
    order_id: uuid.UUID
    number: str


@dataclass(frozen=True, kw_only=True)
class OrderCreated(_OrderEvent):
    event_type = "orders.order_created"
    project_id: uuid.UUID
    parent_id: uuid.UUID | None
    amount: str


@dataclass(frozen=True, kw_only=True)
class OrderUpdated(_OrderEvent):
    event_type = "orders.order_updated"
    fields: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class OrderTransitioned(_OrderEvent):
    """Any state change; `transition` names it (submit, approve, sign…) so consumers can filter."""

    event_type = "orders.order_transitioned"
    transition: str
    from_state: str
    to_state: str
    stage_owner_id: uuid.UUID | None
    project_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class AttachmentAdded(_OrderEvent):
    event_type = "orders.attachment_added"
    attachment_id: uuid.UUID
    kind: str
    sha256: str
