"""The outbox relay: deliver unsent messages to handlers, in order per aggregate, at least once;
handlers are made idempotent by the ProcessedMessage table.

A transport decides where a message goes. The embedded InProcessTransport calls the registered
handlers in this process; a broker transport (RabbitMQ, a later issue) publishes instead and lets
consumers call the same handlers through `dispatch`.
"""

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from . import periodic
from .models import OutboxMessage, ProcessedMessage

__all__ = ["handles", "handlers_for", "dispatch", "InProcessTransport", "relay_once", "RelayThread"]

log = logging.getLogger("eoms.relay")

Handler = Callable[[OutboxMessage], None]
_registry: dict[str, list[tuple[str, Handler]]] = {}

MAX_BACKOFF = timedelta(minutes=30)


def handles(*event_types: str, name: str | None = None):
    """Register a function as the handler of these event types ("*" for all)."""

    def register(fn: Handler) -> Handler:
        handler_name = name or f"{fn.__module__}.{fn.__qualname__}"
        for event_type in event_types:
            entries = _registry.setdefault(event_type, [])
            if all(existing != handler_name for existing, _ in entries):
                entries.append((handler_name, fn))
        return fn

    return register


def unregister(name: str) -> None:
    for entries in _registry.values():
        entries[:] = [(n, fn) for n, fn in entries if n != name]


def handlers_for(event_type: str) -> list[tuple[str, Handler]]:
    return [*_registry.get(event_type, []), *_registry.get("*", [])]


def dispatch(message: OutboxMessage) -> None:
    """Run every handler of the message once: each in its own transaction, together with the row
    that records it was processed, so a redelivered message is skipped by handlers that saw it."""
    for handler_name, fn in handlers_for(message.event_type):
        if ProcessedMessage.objects.filter(message_id=message.message_id, handler=handler_name).exists():
            continue
        try:
            with transaction.atomic():
                ProcessedMessage.objects.create(message_id=message.message_id, handler=handler_name)
                fn(message)
        except IntegrityError:
            # Another relay processed it at the same moment; the unique constraint kept it single.
            if not ProcessedMessage.objects.filter(message_id=message.message_id, handler=handler_name).exists():
                raise


class InProcessTransport:
    """Embedded mode: deliver by calling the handlers directly."""

    def deliver(self, message: OutboxMessage) -> None:
        dispatch(message)


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=2 ** min(attempts, 20)), MAX_BACKOFF)


def relay_once(transport=None, *, batch: int = 200) -> int:
    """Deliver up to `batch` due messages; the number delivered. A failing message is retried later
    with exponential backoff, and later messages of its aggregate wait behind it (order per aggregate)."""
    transport = transport or InProcessTransport()
    now = timezone.now()
    pending = list(OutboxMessage.objects.filter(sent_at__isnull=True).order_by("id")[:batch])
    blocked: set[tuple[str, str]] = set()
    delivered = 0
    for message in pending:
        key = (message.aggregate_type, message.aggregate_id)
        if key in blocked:
            continue
        if message.next_attempt_at and message.next_attempt_at > now:
            blocked.add(key)
            continue
        try:
            transport.deliver(message)
        except Exception as exc:  # a handler's failure must not stop the relay
            log.warning("outbox message %s (%s) failed: %s", message.id, message.event_type, exc)
            message.attempts += 1
            message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            message.next_attempt_at = timezone.now() + _backoff(message.attempts)
            OutboxMessage.objects.filter(pk=message.pk).update(
                attempts=message.attempts,
                last_error=message.last_error,
                next_attempt_at=message.next_attempt_at,
            )
            blocked.add(key)
            continue
        OutboxMessage.objects.filter(pk=message.pk).update(
            sent_at=timezone.now(), attempts=message.attempts + 1, last_error=""
        )
        delivered += 1
    return delivered


class RelayThread(threading.Thread):
    """The relay as a daemon thread of the web process (embedded mode). On SQLite one relay runs
    per process; `eoms relay` runs it as its own process instead."""

    def __init__(self, interval: float = 1.0, transport=None):
        super().__init__(name="eoms-relay", daemon=True)
        self.interval = interval
        self.transport = transport
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                close_old_connections()
                while relay_once(self.transport):
                    pass
                periodic.run_due()
            except Exception:
                log.exception("relay pass failed")
            finally:
                close_old_connections()
            self._stop_event.wait(self.interval)
