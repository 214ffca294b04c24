"""Domain events and the one way to publish them: emit(), which writes the audit entry and the
outbox message in the caller's transaction, so a rolled-back change leaves neither."""

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from django.db import transaction
from django.utils import timezone

from . import audit
from .context import current_request
from .ids import uuid7
from .models import OutboxMessage
from .rows import Insert

__all__ = ["DomainEvent", "emit"]


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Base of all events: frozen, named in the past tense, carrying ids and the few fields that
    consumers need. Subclasses set event_type ("orders.order_signed"), version, aggregate_type and
    the name of the field holding the aggregate id."""

    event_type: ClassVar[str] = ""
    version: ClassVar[int] = 1
    aggregate_type: ClassVar[str] = ""
    aggregate_field: ClassVar[str] = "id"

    def payload(self) -> dict:
        return audit.normalise(dataclasses.asdict(self))

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate_field))


def emit(
    event: DomainEvent, *, actor, action: str | None = None, object_repr: str = "", changes: dict | None = None
) -> OutboxMessage:
    """Record `event`: one audit entry (action defaults to the event type) and one outbox message.

    Raises RuntimeError outside a transaction: an event must commit or roll back with its change.
    The message is written with a prepared statement (core.rows)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("emit() must run inside the transaction of the change it reports")
    audit.record(
        actor=actor,
        action=action or event.event_type,
        object_type=event.aggregate_type,
        object_id=event.aggregate_id,
        object_repr=object_repr,
        changes=changes,
    )
    message = OutboxMessage(
        message_id=uuid7(),
        event_type=event.event_type,
        event_version=event.version,
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        payload=event.payload(),
        actor_id=str(actor.pk) if getattr(actor, "pk", None) else "",
        request_id=current_request().request_id,
        created_at=timezone.now(),
    )
    _insert_message.save(message)
    return message


_insert_message = Insert(OutboxMessage)
