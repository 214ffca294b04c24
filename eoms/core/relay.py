"""The outbox relay: deliver unsent messages, in order per aggregate, at least once; handlers are made
idempotent by the ProcessedMessage table.

A transport decides where a message goes. The embedded InProcessTransport calls the registered
handlers in this process. With BROKER_URL set, eoms.core.broker.BrokerTransport publishes to RabbitMQ
with publisher confirms, and `eoms worker` calls the same handlers through `dispatch`.

Several relays may run at once. On PostgreSQL and MariaDB each pass claims its batch with SELECT … FOR
UPDATE SKIP LOCKED inside one transaction, so two relays never take the same message; on SQLite one
relay runs at a time (a lock file beside the database). Either way a message is delivered only when
every earlier unsent message of its aggregate is in the same batch, before it: a message held by
another relay, or waiting for its retry, holds back the rest of its aggregate.

After each pass the relay loops (RelayThread here, `eoms relay`) also seal the audit entries committed
meanwhile (`seal_audit`, core.audit.seal), broker or not: the chain is at most about one relay
interval behind the writes.
"""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from . import audit, periodic
from .models import OutboxMessage, ProcessedMessage

try:
    import fcntl
except ImportError:  # not POSIX: one relay per process only
    fcntl = None

__all__ = ["handles", "handlers_for", "dispatch", "InProcessTransport", "TransportUnavailable", "PublishResult"]
__all__ += ["default_transport", "relay_once", "RelayThread", "seal_audit"]

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


class TransportUnavailable(Exception):
    """The transport takes no messages now (the broker is down or does not confirm). Nothing is lost:
    what was not confirmed stays unsent and the next pass sends it again."""


@dataclass
class PublishResult:
    """What a broker made of a batch: `confirmed` message ids (pk), `rejected` ones with the reason
    (nacked or unroutable), and `error` when the connection failed part-way; messages in neither set
    were not confirmed and go again."""

    confirmed: set[int] = field(default_factory=set)
    rejected: dict[int, str] = field(default_factory=dict)
    error: BaseException | None = None


class InProcessTransport:
    """Embedded mode: deliver by calling the handlers directly."""

    mode = "embedded"

    def deliver(self, message: OutboxMessage) -> None:
        dispatch(message)


def default_transport():
    """The broker transport of this process when BROKER_URL is set, else the in-process one."""
    if settings.BROKER_URL:
        from .broker import shared_transport

        return shared_transport()
    return InProcessTransport()


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=2 ** min(attempts, 20)), MAX_BACKOFF)


# ------------------------------------------------------------------------------- one relay on SQLite

_memory_locks: dict[str, threading.Lock] = {}
_memory_locks_guard = threading.Lock()


@contextlib.contextmanager
def _single_relay():
    """On SQLite: whether this relay may run now (one at a time per database; the file lock goes
    with the process, even on SIGKILL). Elsewhere always: rows are claimed with SKIP LOCKED."""
    if connection.vendor != "sqlite":
        yield True
        return
    name = str(connection.settings_dict["NAME"])
    if connection.is_in_memory_db() or fcntl is None:
        with _memory_locks_guard:
            lock = _memory_locks.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
        return
    fd = os.open(f"{name}.relay-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


# ------------------------------------------------------------------------------------------ a pass


def _claim(batch: int, *, lock_rows: bool) -> list[OutboxMessage]:
    due = (
        OutboxMessage.objects.filter(sent_at__isnull=True)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now()))
        .order_by("id")
    )
    if lock_rows:
        due = due.select_for_update(skip_locked=connection.features.has_select_for_update_skip_locked)
    return list(due[:batch])


def _barriers(pending: list[OutboxMessage]) -> dict[tuple[str, str], int]:
    """For each aggregate of the batch, the first unsent message before the batch's last that the
    batch does not hold (another relay holds it, or it waits for its retry): nothing of that
    aggregate after it may go now."""
    keys = {(m.aggregate_type, m.aggregate_id) for m in pending}
    earlier = (
        OutboxMessage.objects.filter(
            sent_at__isnull=True,
            id__lt=pending[-1].pk,
            aggregate_type__in={t for t, _ in keys},
            aggregate_id__in={a for _, a in keys},
        )
        .exclude(id__in=[m.pk for m in pending])
        .values_list("aggregate_type", "aggregate_id", "id")
    )
    barriers: dict[tuple[str, str], int] = {}
    for aggregate_type, aggregate_id, message_id in earlier:
        key = (aggregate_type, aggregate_id)
        if key in keys and message_id < barriers.get(key, message_id + 1):
            barriers[key] = message_id
    return barriers


def _in_order(pending: Iterable[OutboxMessage], barriers: dict) -> list[OutboxMessage]:
    return [m for m in pending if m.pk < barriers.get((m.aggregate_type, m.aggregate_id), m.pk + 1)]


def _record_failure(message: OutboxMessage, error: str) -> None:
    message.attempts += 1
    message.last_error = error[:2000]
    message.next_attempt_at = timezone.now() + _backoff(message.attempts)
    OutboxMessage.objects.filter(pk=message.pk).update(
        attempts=message.attempts, last_error=message.last_error, next_attempt_at=message.next_attempt_at
    )


def _deliver_in_process(transport, pending: list[OutboxMessage], barriers: dict) -> tuple[int, int]:
    """Each message through the handlers; a failure is retried later with exponential backoff, and
    later messages of its aggregate wait behind it."""
    blocked: set[tuple[str, str]] = set()
    delivered = failed = 0
    for message in _in_order(pending, barriers):
        key = (message.aggregate_type, message.aggregate_id)
        if key in blocked:
            continue
        try:
            transport.deliver(message)
        except Exception as exc:  # a handler's failure must not stop the relay
            log.warning("outbox message %s (%s) failed: %s", message.id, message.event_type, exc)
            _record_failure(message, f"{type(exc).__name__}: {exc}")
            blocked.add(key)
            failed += 1
            continue
        OutboxMessage.objects.filter(pk=message.pk).update(
            sent_at=timezone.now(), attempts=message.attempts + 1, last_error=""
        )
        delivered += 1
    return delivered, failed


def _publish(transport, pending: list[OutboxMessage], barriers: dict) -> tuple[int, int, BaseException | None]:
    """The batch to the broker at once, then marked sent as far as the confirms go: per aggregate up to
    its first message not confirmed, so what goes again goes in order (a confirmed message after it
    is sent again too; consumers skip what they processed)."""
    ordered = _in_order(pending, barriers)
    result: PublishResult = transport.publish(ordered)
    stopped: set[tuple[str, str]] = set()
    sent: list[int] = []
    failed = 0
    for message in ordered:
        key = (message.aggregate_type, message.aggregate_id)
        if key in stopped:
            continue
        if message.pk in result.confirmed:
            sent.append(message.pk)
            continue
        stopped.add(key)
        failed += 1
        if message.pk in result.rejected:
            log.warning(
                "broker refused outbox message %s (%s): %s", message.pk, message.event_type, result.rejected[message.pk]
            )
            _record_failure(message, result.rejected[message.pk])
    if sent:
        OutboxMessage.objects.filter(pk__in=sent).update(
            sent_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
        )
    return len(sent), failed, result.error


def relay_once(transport=None, *, batch: int = 200) -> int:
    """Deliver up to `batch` due messages; the number delivered. Raises TransportUnavailable when the
    broker could not take them (after recording what it did confirm); the messages wait."""
    from .metrics import RELAY_FAILED, RELAY_PUBLISHED

    transport = transport or default_transport()
    mode = getattr(transport, "mode", "embedded")
    error = None
    with _single_relay() as allowed:
        if not allowed:
            return 0
        lock_rows = connection.vendor != "sqlite"
        with transaction.atomic() if lock_rows else contextlib.nullcontext():
            pending = _claim(batch, lock_rows=lock_rows)
            if not pending:
                return 0
            barriers = _barriers(pending)
            if hasattr(transport, "publish"):
                delivered, failed, error = _publish(transport, pending, barriers)
            else:
                delivered, failed = _deliver_in_process(transport, pending, barriers)
    RELAY_PUBLISHED.labels(mode=mode).inc(delivered)
    RELAY_FAILED.labels(mode=mode).inc(failed)
    if error is not None:
        raise TransportUnavailable(f"{type(error).__name__}: {error}") from error
    return delivered


def drain(transport=None, *, stop: threading.Event | None = None, batch: int = 200) -> int:
    """Relay passes until nothing is due (or `stop` is set); the number delivered."""
    total = 0
    while stop is None or not stop.is_set():
        delivered = relay_once(transport, batch=batch)
        total += delivered
        if not delivered:
            break
    return total


def seal_audit() -> int:
    """Seal the audit entries committed since the last pass (core.audit.seal); the number sealed. A
    failure is logged and tried again at the next pass: it must not stop the relay."""
    try:
        return audit.seal()
    except Exception:
        log.exception("sealing the audit chain failed")
        return 0


class RelayThread(threading.Thread):
    """The relay as a daemon thread of the web process (embedded mode). On SQLite one relay runs
    at a time; `eoms relay` runs it as its own process instead. With a broker the periodic jobs are
    `eoms beat`'s; without, this thread runs them."""

    def __init__(self, interval: float = 1.0, transport=None):
        super().__init__(name="eoms-relay", daemon=True)
        self.interval = interval
        self.transport = transport
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        warned_at = 0.0
        while not self._stop_event.is_set():
            try:
                close_old_connections()
                drain(self.transport, stop=self._stop_event)
                if not settings.BROKER_URL:
                    periodic.run_due()
            except TransportUnavailable as exc:
                if time.monotonic() - warned_at > 60:  # once a minute while the broker is away
                    log.warning("broker unavailable, events wait in the outbox: %s", exc)
                    warned_at = time.monotonic()
            except Exception:
                log.exception("relay pass failed")
            finally:
                seal_audit()  # also while the broker is away
                close_old_connections()
            self._stop_event.wait(self.interval)
