"""Every write of webhooks: managing subscriptions (administrators, audited) and delivering events.

Delivery: the relay handler (handlers.py) writes one Delivery per active subscription that wants the
event, in the handler's transaction (with the relay's ProcessedMessage row, and unique per
(message_id, subscription): a redelivered event is sent once), and sends them after it commits. A
failed attempt is retried by the periodic job `webhooks.deliveries` with exponential backoff (30 s,
doubling, at most 1 h apart) up to WEBHOOKS_MAX_ATTEMPTS attempts; then the delivery is FAILED and
counts against its subscription, which is paused after WEBHOOKS_PAUSE_AFTER such deliveries in a
row, with an event (webhooks.subscription_paused) and an audit entry; eoms.notifications hears that
event and tells the owner, and the webhooks page shows the pause and its reason.
"""

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from eoms.core import audit
from eoms.core.errors import Conflict
from eoms.core.events import emit

from .errors import SubscriptionInvalid, TargetRefused
from .events import SubscriptionPaused
from .models import Attempt, Delivery, DeliveryState, Subscription, SubscriptionState
from .policies import require_webhook_admin
from .selectors import access_delivery, access_subscription, known_event_types
from .targets import check_target, open_connection

__all__ = [
    "signature_header",
    "event_body",
    "create_subscription",
    "update_subscription",
    "delete_subscription",
    "pause_subscription",
    "resume_subscription",
    "redeliver",
    "enqueue_deliveries",
    "send_due_deliveries",
]

log = logging.getLogger("eoms.webhooks")

# A SENDING row older than this belongs to a sender that died mid-request (requests time out long
# before): it is sent again.
STALE_SENDING = timedelta(minutes=5)
MAX_RESPONSE = 64 * 1024


# ------------------------------------------------------------------------------------------ signing


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` (docs/webhooks.md)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def event_body(message) -> str:
    """The JSON an outbox message is sent as: {id, type, version, occurred_at, aggregate, data}."""
    return json.dumps(
        {
            "id": str(message.message_id),
            "type": message.event_type,
            "version": message.event_version,
            "occurred_at": message.created_at,
            "aggregate": {"type": message.aggregate_type, "id": message.aggregate_id},
            "data": message.payload,
        },
        cls=DjangoJSONEncoder,
        ensure_ascii=False,
        separators=(",", ":"),
    )


# ------------------------------------------------------------------------------------- management


def _clean_event_types(event_types) -> list[str]:
    if not isinstance(event_types, list | tuple) or not event_types:
        raise SubscriptionInvalid(errors=[{"field": "event_types", "message": _("Choose at least one event type.")}])
    known = set(known_event_types())
    chosen = []
    for value in event_types:
        if value != "*" and value not in known:
            raise SubscriptionInvalid(
                errors=[{"field": "event_types", "message": _("Unknown event type: %(type)s") % {"type": value}}]
            )
        if value not in chosen:
            chosen.append(value)
    return ["*"] if "*" in chosen else sorted(chosen)


def _audit(actor, action: str, subscription: Subscription, changes: dict) -> None:
    audit.record(
        actor=actor,
        action=action,
        object_type="webhooks.subscription",
        object_id=subscription.pk,
        object_repr=subscription.target_url[:200],
        changes=changes,
    )


@transaction.atomic
def create_subscription(*, actor, target_url: str, event_types, description: str = "") -> tuple[Subscription, str]:
    """A new active webhook owned by `actor` (an administrator), and its secret: the one time it is
    given out. TargetRefused for a URL EOMS may not call, SubscriptionInvalid for unknown event types."""
    require_webhook_admin(actor)
    chosen = _clean_event_types(event_types)
    target_url = target_url.strip()
    check_target(target_url)
    secret = "whsec_" + secrets.token_urlsafe(32)
    subscription = Subscription.objects.create(
        owner=actor, target_url=target_url, event_types=chosen, description=description.strip()[:200], secret=secret
    )
    _audit(
        actor,
        "webhooks.subscription_created",
        subscription,
        {"target_url": target_url, "event_types": chosen, "description": subscription.description},
    )
    return subscription, secret


@transaction.atomic
def update_subscription(
    *, actor, subscription_id, target_url: str | None = None, event_types=None, description: str | None = None
) -> Subscription:
    """Change the target, the event types or the description (what is None stays). Audited with what
    changed; nothing changed, nothing written. The secret stays."""
    subscription = access_subscription(actor, subscription_id, for_update=True)
    changes = {}
    if target_url is not None and target_url.strip() != subscription.target_url:
        check_target(target_url.strip())
        changes["target_url"] = [subscription.target_url, target_url.strip()]
        subscription.target_url = target_url.strip()
    if event_types is not None:
        chosen = _clean_event_types(event_types)
        if chosen != subscription.event_types:
            changes["event_types"] = [subscription.event_types, chosen]
            subscription.event_types = chosen
    if description is not None and description.strip()[:200] != subscription.description:
        changes["description"] = [subscription.description, description.strip()[:200]]
        subscription.description = description.strip()[:200]
    if changes:
        subscription.version += 1
        subscription.save()
        _audit(actor, "webhooks.subscription_updated", subscription, changes)
    return subscription


@transaction.atomic
def delete_subscription(*, actor, subscription_id) -> None:
    """Remove a webhook and its delivery log (audited)."""
    subscription = access_subscription(actor, subscription_id, for_update=True)
    _audit(
        actor,
        "webhooks.subscription_deleted",
        subscription,
        {"target_url": subscription.target_url, "event_types": subscription.event_types},
    )
    subscription.delete()


@transaction.atomic
def pause_subscription(*, actor, subscription_id, reason: str = "") -> Subscription:
    """Stop sending (deliveries made while paused wait; none are made for new events). Paused
    already: unchanged."""
    subscription = access_subscription(actor, subscription_id, for_update=True)
    if subscription.state == SubscriptionState.PAUSED:
        return subscription
    reason = reason.strip()[:300] or _("Paused by %(user)s") % {"user": actor.username}
    subscription.state = SubscriptionState.PAUSED
    subscription.paused_reason = reason
    subscription.version += 1
    subscription.save()
    _audit(actor, "webhooks.subscription_paused", subscription, {"state": ["active", "paused"], "reason": reason})
    return subscription


@transaction.atomic
def resume_subscription(*, actor, subscription_id) -> Subscription:
    """Send again: the failure count starts afresh and waiting deliveries go at once."""
    subscription = access_subscription(actor, subscription_id, for_update=True)
    if subscription.state == SubscriptionState.ACTIVE:
        return subscription
    subscription.state = SubscriptionState.ACTIVE
    subscription.paused_reason = ""
    subscription.consecutive_failures = 0
    subscription.version += 1
    subscription.save()
    Delivery.objects.filter(subscription=subscription, state=DeliveryState.PENDING).update(due_at=timezone.now())
    _audit(actor, "webhooks.subscription_resumed", subscription, {"state": ["paused", "active"]})
    transaction.on_commit(lambda: send_due_deliveries(subscription_id=subscription.pk))
    return subscription


@transaction.atomic
def redeliver(*, actor, subscription_id, delivery_id) -> Delivery:
    """Send a delivery once more, now (after the commit), as a new attempt, whatever its state and
    the subscription's (an administrator testing a fixed receiver). Its failure starts no new
    retries. Conflict while it is being sent."""
    subscription = access_subscription(actor, subscription_id)
    delivery = access_delivery(actor, subscription, delivery_id, for_update=True)
    if delivery.state == DeliveryState.SENDING:
        raise Conflict(_("This delivery is being sent right now; try again in a moment."))
    _audit(
        actor,
        "webhooks.delivery_redelivered",
        subscription,
        {"delivery": str(delivery.pk), "event": str(delivery.message_id), "state": [delivery.state, "pending"]},
    )
    delivery.state = DeliveryState.PENDING
    delivery.redelivery = True
    delivery.due_at = timezone.now()
    delivery.save(update_fields=["state", "redelivery", "due_at"])
    transaction.on_commit(lambda: send_due_deliveries(ids=[delivery.pk]))
    return delivery


# --------------------------------------------------------------------------------------- delivery


def enqueue_deliveries(message) -> list[Delivery]:
    """One delivery of the outbox `message` per active subscription that wants its type (none for
    those that have one already), sent once the handler's transaction commits."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("enqueue_deliveries() runs inside the handler's transaction")
    wanting = [s for s in Subscription.objects.filter(state=SubscriptionState.ACTIVE) if s.wants(message.event_type)]
    if not wanting:
        return []
    done = set(
        Delivery.objects.filter(message_id=message.message_id, subscription__in=wanting).values_list(
            "subscription_id", flat=True
        )
    )
    now = timezone.now()
    body = event_body(message)
    made = [
        Delivery(
            subscription=s,
            message_id=message.message_id,
            event_type=message.event_type,
            body=body,
            due_at=now,
            created_at=now,
        )
        for s in wanting
        if s.pk not in done
    ]
    Delivery.objects.bulk_create(made)
    ids = [d.pk for d in made]
    if ids:
        # After the commit: a rolled-back handler sends nothing. If this process dies first, the
        # periodic job sends them.
        transaction.on_commit(lambda: send_due_deliveries(ids=ids))
    return made


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=30 * 2 ** max(attempts - 1, 0)), timedelta(hours=1))


def send_due_deliveries(*, ids: Iterable | None = None, subscription_id=None, limit: int = 100) -> dict[str, int]:
    """Send the due deliveries (of active subscriptions, or redelivered by hand); only those of `ids`
    or of one subscription when given. Each is claimed PENDING→SENDING by a compare-and-set, so two
    senders never send one. Runs outside any transaction and never raises (it runs after a handler's
    commit and from the periodic job). Counts of delivered, retry, failed and skipped deliveries."""
    counts = {"delivered": 0, "retry": 0, "failed": 0, "skipped": 0}
    try:
        now = timezone.now()
        Delivery.objects.filter(state=DeliveryState.SENDING, claimed_at__lt=now - STALE_SENDING).update(
            state=DeliveryState.PENDING
        )
        # A paused subscription's deliveries wait, except one an administrator redelivers.
        due = Delivery.objects.filter(state=DeliveryState.PENDING, due_at__lte=now).filter(
            Q(subscription__state=SubscriptionState.ACTIVE) | Q(redelivery=True)
        )
        if ids is not None:
            due = due.filter(pk__in=list(ids))
        if subscription_id is not None:
            due = due.filter(subscription_id=subscription_id)
        for pk in list(due.order_by("due_at", "id").values_list("pk", flat=True)[:limit]):
            counts[_send_one(pk)] += 1
    except Exception:
        log.exception("sending webhooks failed")
    return counts


def _post(subscription: Subscription, delivery: Delivery) -> tuple[int | None, str]:
    """One request: (response code or None, error text or "" when delivered)."""
    target = check_target(subscription.target_url)  # again: the name may resolve elsewhere now
    body = delivery.body.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "EOMS-Webhooks/1",
        "X-EOMS-Event": delivery.event_type,
        "X-EOMS-Delivery": str(delivery.pk),
        "X-EOMS-Timestamp": str(timestamp),
        "X-EOMS-Signature": signature_header(subscription.secret, timestamp, body),
    }
    connection = open_connection(target, timeout=settings.WEBHOOKS_TIMEOUT)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE)
        if 200 <= response.status < 300:
            return response.status, ""
        return response.status, f"HTTP {response.status} {response.reason}"
    finally:
        connection.close()


def _send_one(pk) -> str:
    claimed = Delivery.objects.filter(pk=pk, state=DeliveryState.PENDING).update(
        state=DeliveryState.SENDING, claimed_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return "skipped"  # another sender took it
    delivery = Delivery.objects.select_related("subscription").get(pk=pk)
    subscription = delivery.subscription
    started_at = timezone.now()
    clock = time.monotonic()
    try:
        status_code, error = _post(subscription, delivery)
    except TargetRefused as exc:
        status_code, error = None, exc.detail
    except Exception as exc:
        status_code, error = None, f"{type(exc).__name__}: {exc}"
    latency_ms = int((time.monotonic() - clock) * 1000)
    error = error[:500]
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            manual=delivery.redelivery,
            succeeded=not error,
            status_code=status_code,
            latency_ms=latency_ms,
            error=error,
            started_at=started_at,
        )
        fields = {"last_status_code": status_code, "last_error": error, "redelivery": False}
        if not error:
            Delivery.objects.filter(pk=pk).update(state=DeliveryState.DELIVERED, delivered_at=timezone.now(), **fields)
            Subscription.objects.filter(pk=subscription.pk, consecutive_failures__gt=0).update(consecutive_failures=0)
            return "delivered"
        if delivery.redelivery or delivery.attempts >= settings.WEBHOOKS_MAX_ATTEMPTS:
            Delivery.objects.filter(pk=pk).update(state=DeliveryState.FAILED, **fields)
            log.warning("webhook delivery %s failed for good: %s", pk, error)
            if not delivery.redelivery:
                _count_exhausted(subscription.pk)
            return "failed"
        Delivery.objects.filter(pk=pk).update(
            state=DeliveryState.PENDING, due_at=timezone.now() + _backoff(delivery.attempts), **fields
        )
        log.info("webhook delivery %s failed (attempt %s): %s", pk, delivery.attempts, error)
        return "retry"


def _count_exhausted(subscription_id) -> None:
    """One more delivery that used up its attempts; at WEBHOOKS_PAUSE_AFTER in a row, pause."""
    subscription = Subscription.objects.select_for_update().filter(pk=subscription_id).first()
    if subscription is None:
        return
    subscription.consecutive_failures += 1
    fields = ["consecutive_failures", "updated_at"]
    limit = settings.WEBHOOKS_PAUSE_AFTER
    if subscription.state == SubscriptionState.ACTIVE and subscription.consecutive_failures >= limit:
        subscription.state = SubscriptionState.PAUSED
        subscription.paused_reason = _("%(count)d deliveries in a row failed after every attempt.") % {
            "count": subscription.consecutive_failures
        }
        subscription.version += 1
        fields += ["state", "paused_reason", "version"]
        emit(
            SubscriptionPaused(
                id=subscription.pk,
                owner_id=subscription.owner_id,
                target_url=subscription.target_url,
                reason=subscription.paused_reason,
                consecutive_failures=subscription.consecutive_failures,
            ),
            actor=None,
            object_repr=subscription.target_url[:200],
            changes={"state": ["active", "paused"], "reason": subscription.paused_reason},
        )
    subscription.save(update_fields=fields)
