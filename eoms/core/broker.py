"""RabbitMQ, the transport of the outbox when BROKER_URL is set (docs/decisions/0007-message-transport.md).

Topology, all durable, named from EOMS_BROKER_NAMESPACE (default "eoms"), declared by every process
that uses it (the declarations are idempotent):

    <ns>.events            topic exchange; the relay publishes each outbox message with its event
                           type as routing key ("orders.order_created")
    <ns>.handlers          queue bound to <ns>.events with "#": what `eoms worker` consumes; a
                           message it rejects goes to <ns>.dead (x-dead-letter-exchange)
    <ns>.retry.<ms>        one queue per retry delay, without consumers: a failed message waits there
                           (x-message-ttl) and then goes back to <ns>.handlers
    <ns>.dead              fanout exchange and queue: messages that failed EOMS_BROKER_MAX_ATTEMPTS
                           times; the worker records each as a DeadLetter row for the admin page
    <ns>.periodic          queue of `eoms beat`'s ticks, one per periodic job due

A message is the outbox row as JSON (see `encode`), persistent, with the message id, event type and
aggregate in its properties, so any AMQP client can consume it.
"""

import contextlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import amqp
import kombu
import kombu.exceptions
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.dateparse import parse_datetime

from .models import OutboxMessage
from .relay import PublishResult, TransportUnavailable

__all__ = ["BROKER_ERRORS", "Topology", "topology", "connect", "encode", "decode", "BrokerTransport"]
__all__ += ["shared_transport", "ping"]

log = logging.getLogger("eoms.broker")

# Everything a broker connection can raise: socket errors, AMQP connection and channel errors (a
# broker stopping closes connections with 320 CONNECTION_FORCED), kombu's wrappers, nacks.
BROKER_ERRORS = (OSError, amqp.exceptions.AMQPError, amqp.exceptions.MessageNacked, kombu.exceptions.KombuError)
CONNECT_TIMEOUT = 2.0
SCHEMES = ("amqp", "amqps", "pyamqp")
MAX_RETRY_DELAY = 30 * 60.0

HEADER_ATTEMPT = "x-eoms-attempt"  # the number of the delivery attempt this copy is for (1 when absent)
HEADER_ERROR = "x-eoms-error"  # the last handler error
HEADER_FAILED_AT = "x-eoms-failed-at"  # when the last attempt failed (dead letters)


@dataclass(frozen=True)
class Topology:
    namespace: str
    max_attempts: int
    retry_delay: float

    @property
    def exchange_name(self) -> str:
        return f"{self.namespace}.events"

    @property
    def handlers_queue(self) -> str:
        return f"{self.namespace}.handlers"

    @property
    def dead_name(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def periodic_queue(self) -> str:
        return f"{self.namespace}.periodic"

    def retry_delays_ms(self) -> list[int]:
        """The wait after failed attempt 1, 2, …, N-1: retry_delay, four times longer each time, at
        most 30 minutes."""
        return [max(1, int(min(self.retry_delay * 4**k, MAX_RETRY_DELAY) * 1000)) for k in range(self.max_attempts - 1)]

    def retry_queue(self, failed_attempt: int) -> str:
        delays = self.retry_delays_ms()
        return f"{self.namespace}.retry.{delays[min(failed_attempt, len(delays)) - 1]}"

    def exchange(self) -> kombu.Exchange:
        return kombu.Exchange(self.exchange_name, "topic", durable=True)

    def dead_exchange(self) -> kombu.Exchange:
        return kombu.Exchange(self.dead_name, "fanout", durable=True)

    def queues(self) -> dict[str, kombu.Queue]:
        handlers = kombu.Queue(
            self.handlers_queue,
            self.exchange(),
            routing_key="#",
            durable=True,
            queue_arguments={"x-dead-letter-exchange": self.dead_name},
        )
        queues = {
            "handlers": handlers,
            "dead": kombu.Queue(self.dead_name, self.dead_exchange(), durable=True),
            "periodic": kombu.Queue(self.periodic_queue, durable=True),
        }
        for delay in sorted(set(self.retry_delays_ms())):
            name = f"{self.namespace}.retry.{delay}"
            queues[name] = kombu.Queue(
                name,
                durable=True,
                queue_arguments={
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.handlers_queue,
                },
            )
        return queues

    def declare(self, channel) -> None:
        for queue in self.queues().values():
            queue(channel).declare()

    def delete(self, channel) -> None:
        """Remove every queue and exchange (tests)."""
        for queue in self.queues().values():
            queue(channel).delete()
        self.exchange()(channel).delete()
        self.dead_exchange()(channel).delete()


def topology() -> Topology:
    if settings.BROKER_MAX_ATTEMPTS < 1:
        raise ImproperlyConfigured("EOMS_BROKER_MAX_ATTEMPTS must be at least 1.")
    return Topology(settings.BROKER_NAMESPACE, settings.BROKER_MAX_ATTEMPTS, settings.BROKER_RETRY_DELAY)


def connect(url: str | None = None, *, timeout: float = CONNECT_TIMEOUT, heartbeat: int = 0, confirm=False):
    """An open kombu connection to the broker; raises one of BROKER_ERRORS when it cannot be had."""
    url = url or settings.BROKER_URL
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ImproperlyConfigured(f"BROKER_URL must be an AMQP URL ({', '.join(SCHEMES)}), not {scheme}://")
    conn = kombu.Connection(
        url,
        connect_timeout=timeout,
        heartbeat=heartbeat,
        transport_options={"confirm_publish": confirm, "client_properties": {"connection_name": "eoms"}},
    )
    try:
        # One attempt, no sleeping retry (kombu's connect() waits 2 s and tries again): callers
        # have their own schedule, and a probe must answer within its timeout.
        conn.ensure_connection(max_retries=0, reraise_as_library_errors=False)
    except BaseException:
        conn.release()
        raise
    return conn


def ping(url: str | None = None, *, timeout: float = 1.0) -> None:
    """Open and close an AMQP connection (credentials and vhost included); raises on failure."""
    conn = connect(url, timeout=timeout)
    conn.release()


# ------------------------------------------------------------------------------------------ messages


def encode(message: OutboxMessage) -> amqp.Message:
    body = {
        "message_id": str(message.message_id),
        "event_type": message.event_type,
        "event_version": message.event_version,
        "aggregate_type": message.aggregate_type,
        "aggregate_id": message.aggregate_id,
        "payload": message.payload,
        "actor_id": message.actor_id,
        "request_id": message.request_id,
        "created_at": message.created_at.isoformat() if message.created_at else None,
    }
    return amqp.Message(
        json.dumps(body, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")).encode(),
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,  # persistent: survives a broker restart in the durable queues
        message_id=str(message.message_id),
        type=message.event_type,
        app_id="eoms",
        application_headers={"x-eoms-aggregate": f"{message.aggregate_type}:{message.aggregate_id}"},
    )


def decode(body: bytes | str) -> OutboxMessage:
    """The (unsaved) outbox message a broker message carries; ValueError when it is not one."""
    try:
        data = json.loads(body.decode() if isinstance(body, bytes | bytearray | memoryview) else body)
        created_at = parse_datetime(data["created_at"]) if data.get("created_at") else None
        return OutboxMessage(
            message_id=uuid.UUID(data["message_id"]),
            event_type=str(data["event_type"]),
            event_version=int(data.get("event_version", 1)),
            aggregate_type=str(data.get("aggregate_type", "")),
            aggregate_id=str(data.get("aggregate_id", "")),
            payload=data.get("payload") or {},
            actor_id=str(data.get("actor_id", "")),
            request_id=str(data.get("request_id", "")),
            created_at=created_at,
        )
    except (TypeError, KeyError, AttributeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not an EOMS event: {type(exc).__name__}: {exc}") from exc


def body_of(message: OutboxMessage) -> dict:
    return json.loads(bytes(encode(message).body))


# ---------------------------------------------------------------------------------- the relay's side


class BrokerTransport:
    """Publishes a batch of outbox messages on one channel in confirm mode and waits for the broker's
    confirms (a confirm means the message is in every queue bound to it, on disk). Messages are
    published with `mandatory`, so one no queue takes is returned and counted as refused instead of
    being confirmed into nowhere. One connection per transport, opened when first needed and again
    after a failure; one batch at a time."""

    mode = "broker"

    def __init__(self, url: str | None = None, topo: Topology | None = None, confirm_timeout: float | None = None):
        self.url = url or settings.BROKER_URL
        self.topology = topo or topology()
        self.confirm_timeout = settings.BROKER_CONFIRM_TIMEOUT if confirm_timeout is None else confirm_timeout
        self._lock = threading.Lock()
        self._conn = None
        self._channel = None
        self._tag = 0
        self._pending: dict[int, int] = {}  # delivery tag -> outbox pk
        self._by_message_id: dict[str, int] = {}
        self._result: PublishResult | None = None

    # confirm callbacks, called by py-amqp while we drain events
    def _on_ack(self, delivery_tag, multiple):
        for tag in [t for t in self._pending if t == delivery_tag or (multiple and t <= delivery_tag)]:
            pk = self._pending.pop(tag)
            if pk not in self._result.rejected:
                self._result.confirmed.add(pk)

    def _on_nack(self, delivery_tag, multiple):
        for tag in [t for t in self._pending if t == delivery_tag or (multiple and t <= delivery_tag)]:
            self._result.rejected[self._pending.pop(tag)] = "nacked by the broker"

    def _on_return(self, exc, exchange, routing_key, message):
        pk = self._by_message_id.get(message.properties.get("message_id"))
        if pk is not None:
            self._result.rejected[pk] = f"unroutable: no queue is bound for {routing_key!r} on {exchange!r}"

    def _ensure_channel(self):
        if self._channel is not None and self._conn is not None and self._conn.connected:
            return self._channel
        self.close()
        conn = connect(self.url)
        try:
            channel = conn.channel()
            self.topology.declare(channel)
            channel.confirm_select()
        except BaseException:
            conn.release()
            raise
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._conn, self._channel, self._tag = conn, channel, 0
        return channel

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(BROKER_ERRORS):  # already broken: nothing to close politely
                conn.release()

    def publish(self, messages: list[OutboxMessage]) -> PublishResult:
        with self._lock:
            try:
                channel = self._ensure_channel()
            except BROKER_ERRORS as exc:
                self.close()
                raise TransportUnavailable(f"{type(exc).__name__}: {exc}") from exc
            self._result = result = PublishResult()
            self._pending, self._by_message_id = {}, {}
            exchange = self.topology.exchange_name
            try:
                for message in messages:
                    self._tag += 1
                    self._pending[self._tag] = message.pk
                    self._by_message_id[str(message.message_id)] = message.pk
                    channel.basic_publish(
                        encode(message), exchange=exchange, routing_key=message.event_type, mandatory=True
                    )
                deadline = time.monotonic() + self.confirm_timeout
                while self._pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(
                            f"{len(self._pending)} publish confirm(s) not received in {self.confirm_timeout:g} s"
                        )
                    try:
                        self._conn.drain_events(timeout=min(remaining, 1.0))
                    except TimeoutError:
                        continue
            except BROKER_ERRORS as exc:
                # Whatever was not confirmed is sent again by a later pass; this connection is done.
                result.error = exc
                self.close()
            finally:
                self._pending, self._by_message_id, self._result = {}, {}, None
            return result


_shared: dict[tuple, BrokerTransport] = {}
_shared_lock = threading.Lock()


def shared_transport() -> BrokerTransport:
    """This process's transport for the configured broker, kept between relay passes."""
    topo = topology()
    key = (settings.BROKER_URL, topo, settings.BROKER_CONFIRM_TIMEOUT)
    with _shared_lock:
        transport = _shared.get(key)
        if transport is None:
            transport = _shared[key] = BrokerTransport(settings.BROKER_URL, topo)
        return transport


def now_iso() -> str:
    return datetime.now().astimezone().isoformat()
