import uuid
from dataclasses import dataclass

from eoms.core.events import DomainEvent

__all__ = ["SubscriptionPaused"]


@dataclass(frozen=True, kw_only=True)
class SubscriptionPaused(DomainEvent):
    """A webhook was paused because its deliveries kept failing (`reason`); its owner should know.
    (An administrator pausing one by hand is audited, not published.)"""

    event_type = "webhooks.subscription_paused"
    aggregate_type = "webhooks.subscription"
    id: uuid.UUID
    owner_id: uuid.UUID
    target_url: str
    reason: str
    consecutive_failures: int
