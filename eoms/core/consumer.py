"""`eoms worker` and `eoms beat`: the broker's side of the outbox (docs/decisions/0007-message-transport.md).

The worker consumes <ns>.handlers with manual acks and a prefetch limit and calls the same handlers
as the embedded relay, through eoms.core.relay.dispatch (ProcessedMessage keeps each handler to one
run per message, however often the broker redelivers it). A message is acked only after its handlers
committed. When a handler fails, a copy with the attempt number and the error goes to the retry
queue of that attempt (it comes back after the delay) and the original is acked; after
BROKER_MAX_ATTEMPTS failed attempts the copy goes to <ns>.dead instead. The worker also records what
arrives in <ns>.dead as DeadLetter rows and runs the periodic jobs that `eoms beat` schedules.

When the database cannot be reached the message goes back to the queue untouched (a failure of the
infrastructure is not one of the message). When the broker goes away the worker reconnects with
backoff; unacked messages are redelivered by the broker.
"""

import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import amqp
import kombu
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import broker, periodic
from .broker import BROKER_ERRORS, HEADER_ATTEMPT, HEADER_ERROR, HEADER_FAILED_AT
from .relay import dispatch

__all__ = ["Worker", "Beat", "QUEUES"]

log = logging.getLogger("eoms.worker")

QUEUES = ("handlers", "dead", "periodic")
MAX_RECONNECT_DELAY = 10.0


def _fresh_connections() -> None:
    """Drop database connections that broke or outlived EOMS_DB_CONN_MAX_AGE, as a web request does;
    never the connection of a transaction in progress (a test driving the worker inside one)."""
    if not connection.in_atomic_block:
        close_old_connections()


def _database_reachable() -> bool:
    try:
        _fresh_connections()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        return False


def _raw(body) -> bytes:
    """A message body as bytes (py-amqp hands over text when the message names its encoding)."""
    return body.encode() if isinstance(body, str) else bytes(body)


def _copy(message, **headers) -> amqp.Message:
    """The message again, same body and properties, with these headers added."""
    props = dict(message.properties)
    merged = {**(message.headers or {}), **headers}
    merged.pop("x-death", None)  # the broker's own bookkeeping of earlier dead-lettering
    props["application_headers"] = merged
    props["delivery_mode"] = 2
    return amqp.Message(_raw(message.body), **props)


class Worker:
    """One consumer connection (prefetch-limited, manual acks) and one publishing connection in
    confirm mode for retries and dead letters. Single-threaded: messages are handled one at a time
    in the order the broker gives them; run several workers for more."""

    def __init__(self, *, url=None, topo=None, prefetch=None, queues=QUEUES, heartbeat: int = 30):
        self.url = url or settings.BROKER_URL
        self.topology = topo or broker.topology()
        self.prefetch = settings.BROKER_PREFETCH if prefetch is None else prefetch
        unknown = set(queues) - set(QUEUES)
        if unknown:
            raise ValueError(f"unknown queue(s): {', '.join(sorted(unknown))}; choose from {', '.join(QUEUES)}")
        self.queues = tuple(queues)
        self.heartbeat = heartbeat
        self._conn = None
        self._pub = None
        self._consumers = []
        self.processed = self.failed = self.dead_lettered = self.recorded = 0
        self.connected = threading.Event()

    # ------------------------------------------------------------------------------ connections
    def _connect(self) -> None:
        conn = broker.connect(self.url, heartbeat=self.heartbeat)
        try:
            channel = conn.channel()
            self.topology.declare(channel)
            channel.basic_qos(prefetch_size=0, prefetch_count=self.prefetch, a_global=False)
            queues = self.topology.queues()
            callbacks = {"handlers": self._on_event, "dead": self._on_dead, "periodic": self._on_tick}
            consumers = [
                kombu.Consumer(channel, queues=[queues[name]], on_message=callbacks[name], no_ack=False)
                for name in self.queues
            ]
            for consumer in consumers:
                consumer.consume()
        except BaseException:
            conn.release()
            raise
        self._conn, self._consumers = conn, consumers
        self.connected.set()

    def _publisher(self):
        if self._pub is None or not self._pub.connected:
            self._close_publisher()
            self._pub = broker.connect(self.url, confirm=True)
        return self._pub.default_channel

    def _publish(self, message: amqp.Message, *, exchange: str, routing_key: str) -> None:
        self._publisher().basic_publish(
            message, exchange=exchange, routing_key=routing_key, confirm_timeout=settings.BROKER_CONFIRM_TIMEOUT
        )

    def _close_publisher(self) -> None:
        pub, self._pub = self._pub, None
        if pub is not None:
            with contextlib.suppress(BROKER_ERRORS):
                pub.release()

    def close(self) -> None:
        self.connected.clear()
        conn, self._conn, self._consumers = self._conn, None, []
        if conn is not None:
            with contextlib.suppress(BROKER_ERRORS):
                conn.release()
        self._close_publisher()

    # ------------------------------------------------------------------------------------ loop
    def run(
        self,
        stop: threading.Event | None = None,
        *,
        until: Callable[[], bool] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Consume until `stop` is set, or `until()` is true (checked after each wait of at most a
        second), or `timeout` seconds have passed (TimeoutError when `until` was given)."""
        stop = stop or threading.Event()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.5
        try:
            while not stop.is_set():
                if until is not None and until():
                    return
                if deadline is not None and time.monotonic() > deadline:
                    if until is not None:
                        raise TimeoutError(f"worker condition not met within {timeout:g} s")
                    return
                try:
                    if self._conn is None:
                        self._connect()
                        log.info("worker connected; consuming %s", ", ".join(self.queues))
                        delay = 0.5
                    self._conn.heartbeat_check()
                    with contextlib.suppress(TimeoutError):
                        self._conn.drain_events(timeout=1.0 if until is None else 0.2)
                except BROKER_ERRORS as exc:
                    log.warning(
                        "broker connection lost (%s: %s); reconnecting in %.1f s", type(exc).__name__, exc, delay
                    )
                    self.close()
                    stop.wait(delay)
                    delay = min(delay * 2, MAX_RECONNECT_DELAY)
        finally:
            self.close()

    # -------------------------------------------------------------------------------- messages
    def _on_event(self, message) -> None:
        from .metrics import CONSUMER_DEAD_LETTERED, CONSUMER_FAILED, CONSUMER_PROCESSED

        try:
            outbox = broker.decode(message.body)
        except ValueError as exc:
            log.error("unreadable message %s dead-lettered: %s", message.properties.get("message_id"), exc)
            message.reject(requeue=False)  # the queue's dead-letter exchange takes it
            CONSUMER_DEAD_LETTERED.labels(event_type="unknown").inc()
            self.dead_lettered += 1
            return
        attempt = int((message.headers or {}).get(HEADER_ATTEMPT, 1))
        _fresh_connections()
        try:
            dispatch(outbox)
        except Exception as exc:
            if isinstance(exc, DatabaseError) and not _database_reachable():
                log.warning("database unreachable; message %s goes back to the queue", outbox.message_id)
                message.requeue()
                time.sleep(1.0)
                return
            CONSUMER_FAILED.labels(event_type=outbox.event_type).inc()
            self.failed += 1
            error = f"{type(exc).__name__}: {exc}"[:2000]
            if attempt >= self.topology.max_attempts:
                log.error(
                    "message %s (%s) dead-lettered after %d attempts: %s",
                    outbox.message_id,
                    outbox.event_type,
                    attempt,
                    error,
                )
                copy = _copy(
                    message, **{HEADER_ATTEMPT: attempt, HEADER_ERROR: error, HEADER_FAILED_AT: broker.now_iso()}
                )
                self._publish(copy, exchange=self.topology.dead_name, routing_key=outbox.event_type)
                CONSUMER_DEAD_LETTERED.labels(event_type=outbox.event_type).inc()
                self.dead_lettered += 1
            else:
                queue = self.topology.retry_queue(attempt)
                log.warning(
                    "message %s (%s) attempt %d failed, retried via %s: %s",
                    outbox.message_id,
                    outbox.event_type,
                    attempt,
                    queue,
                    error,
                )
                copy = _copy(message, **{HEADER_ATTEMPT: attempt + 1, HEADER_ERROR: error})
                self._publish(copy, exchange="", routing_key=queue)
            # Acked only now that the copy is confirmed: a crash in between sends it twice, never zero times.
            message.ack()
            return
        finally:
            _fresh_connections()
        message.ack()
        CONSUMER_PROCESSED.labels(event_type=outbox.event_type).inc()
        self.processed += 1

    def _on_dead(self, message) -> None:
        from .dead_letters import record_dead_letter

        headers = message.headers or {}
        raw = _raw(message.body)
        try:
            outbox = broker.decode(raw)
            body = json.loads(raw)
        except ValueError:
            outbox = None
            body = {"raw": raw.decode("utf-8", "replace")[:20000]}
        message_id = (
            outbox.message_id if outbox is not None else uuid.UUID(bytes=hashlib.sha256(raw).digest()[:16], version=4)
        )
        error = headers.get(HEADER_ERROR) or _death_reason(headers)
        failed_at = _failed_at(headers)
        _fresh_connections()
        try:
            record_dead_letter(
                message_id=message_id,
                event_type=outbox.event_type if outbox else str(message.properties.get("type") or "unknown"),
                aggregate_type=outbox.aggregate_type if outbox else "",
                aggregate_id=outbox.aggregate_id if outbox else "",
                body=body,
                error=str(error),
                attempts=int(headers.get(HEADER_ATTEMPT, 1)),
                dead_at=failed_at,
            )
        except DatabaseError:
            log.exception("dead letter %s not recorded; back to the queue", message_id)
            message.requeue()
            time.sleep(1.0)
            return
        finally:
            _fresh_connections()
        message.ack()
        self.recorded += 1

    def _on_tick(self, message) -> None:
        try:
            name = json.loads(_raw(message.body))["job"]
        except (ValueError, KeyError, TypeError):
            log.error("unreadable periodic tick dropped")
            message.ack()
            return
        job = {j.name: j for j in periodic.jobs()}.get(name)
        if job is None:
            log.warning("periodic tick for unknown job %s dropped", name)
            message.ack()
            return
        _fresh_connections()
        try:
            result = job.run()
            log.info("periodic job %s: %s", name, result)
        except Exception:
            log.exception("periodic job %s failed; the next tick runs it again", name)
        finally:
            _fresh_connections()
        message.ack()


def _death_reason(headers: dict) -> str:
    deaths = headers.get("x-death") or []
    if deaths:
        first = deaths[0]
        return f"dead-lettered by the broker: {first.get('reason', 'rejected')} from {first.get('queue', '?')}"
    return "dead-lettered"


def _failed_at(headers: dict) -> datetime:
    value = headers.get(HEADER_FAILED_AT)
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is not None:
        return parsed
    deaths = headers.get("x-death") or []
    if deaths and isinstance(deaths[0].get("time"), datetime):
        stamp = deaths[0]["time"]
        return stamp if timezone.is_aware(stamp) else stamp.replace(tzinfo=UTC)
    return timezone.now()


class Beat:
    """Publishes one tick per periodic job when its interval has passed (the jobs of
    eoms.core.periodic: approval SLA timers…); a worker runs it. A tick expires after the job's
    interval, so ticks do not pile up while no worker runs. Jobs are idempotent, so a tick run twice,
    or by two workers, does no harm; run one beat."""

    def __init__(self, *, url=None, topo=None):
        self.url = url or settings.BROKER_URL
        self.topology = topo or broker.topology()
        self._conn = None
        self.last: dict[str, float] = {}
        self.sent = 0

    def _channel(self):
        if self._conn is None or not self._conn.connected:
            self.close()
            self._conn = broker.connect(self.url, confirm=True)
            self.topology.declare(self._conn.default_channel)
        return self._conn.default_channel

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(BROKER_ERRORS):
                conn.release()

    def tick(self, now: float | None = None) -> list[str]:
        """Publish the ticks now due; the names of the jobs ticked. Raises one of BROKER_ERRORS
        when the broker is away (the jobs stay due)."""
        now = time.monotonic() if now is None else now
        ticked = []
        for job in periodic.jobs():
            last = self.last.get(job.name)
            if last is not None and now - last < job.every:
                continue
            body = json.dumps({"job": job.name, "at": broker.now_iso()}).encode()
            message = amqp.Message(
                body,
                content_type="application/json",
                delivery_mode=1,
                expiration=str(max(1, int(job.every * 1000))),
                type="eoms.periodic",
                app_id="eoms",
            )
            try:
                self._channel().basic_publish(
                    message,
                    exchange="",
                    routing_key=self.topology.periodic_queue,
                    confirm_timeout=settings.BROKER_CONFIRM_TIMEOUT,
                )
            except BROKER_ERRORS:
                self.close()
                raise
            self.last[job.name] = now
            self.sent += 1
            ticked.append(job.name)
        return ticked

    def run(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        warned_at = 0.0
        try:
            while not stop.is_set():
                try:
                    for name in self.tick():
                        log.info("periodic job %s scheduled", name)
                except BROKER_ERRORS as exc:
                    if time.monotonic() - warned_at > 60:
                        log.warning("broker unavailable, periodic jobs wait: %s: %s", type(exc).__name__, exc)
                        warned_at = time.monotonic()
                stop.wait(interval)
        finally:
            self.close()
