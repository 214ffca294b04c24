"""The relay handler that turns events into webhook deliveries (in-process in embedded mode, in
`eoms worker` with a broker; once per message, by the relay's ProcessedMessage).

It is registered for every event type EOMS publishes (selectors.known_event_types), not for "*":
events of no context (tests' own) do not reach it.
"""

from eoms.core.relay import handles

from .selectors import known_event_types
from .services import enqueue_deliveries

__all__ = ["HANDLER", "register_handlers", "on_event"]

HANDLER = "eoms.webhooks.deliver"


def on_event(message) -> None:
    enqueue_deliveries(message)


def register_handlers() -> None:
    handles(*known_event_types(), name=HANDLER)(on_event)
