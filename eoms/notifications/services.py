"""Every write of notifications.

`notify` is called by the event handlers (handlers.py) inside the handler's transaction, which
also holds the relay's ProcessedMessage row: a redelivered event is skipped before it gets here, and
the unique (message_id, recipient) constraint keeps it single even if it were not.

Marking read is the recipient's own bookkeeping of their inbox, not a business change: it writes
no audit entry and no event (it would double the audit chain's size for nothing anyone audits).
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from eoms.accounts.roles import Role
from eoms.accounts.selectors import has_role
from eoms.core import audit
from eoms.core.errors import PermissionDenied

from .channels import CHANNELS, enabled_channels
from .conf import digest_hour
from .errors import PreferencesInvalid
from .models import Channel, Delivery, DeliveryState, Digest, Notification, NotificationKind, NotificationPreferences
from .selectors import (
    access_notification,
    get_notification_preferences,
    list_notifications,
    preferences_of,
    shown_address,
)

__all__ = [
    "Rendered",
    "language_of",
    "notify",
    "send_deliveries",
    "send_digests",
    "retry_deliveries",
    "discard_deliveries",
    "set_notification_preferences",
    "mark_notification_read",
    "mark_all_notifications_read",
]

log = logging.getLogger("eoms.notifications")

# A SENDING row older than this belongs to a sender that died mid-send: it is sent again (the
# one case where a message may arrive twice, with the same Message-ID).
STALE_SENDING = timedelta(minutes=10)


@dataclass(frozen=True)
class Rendered:
    """A notification as one recipient reads it: in their language, with a link to the object's
    page (a path of this site)."""

    title: str
    body: str
    url: str = ""


def language_of(user) -> str:
    """The user's chosen language, else the site's."""
    return getattr(user, "language", "") or settings.LANGUAGE_CODE


def notify(*, message, recipients, kind: str, render: Callable[[object], Rendered]) -> list[Notification]:
    """One notification per recipient of the event `message` (an OutboxMessage), rendered by
    `render(recipient)` in the recipient's language. Recipients already notified of this message
    (a redelivery) and inactive users are skipped; the same user listed twice is told once."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notify() runs inside the handler's transaction")
    seen = set()
    unique = []
    for user in recipients:
        if user is None or not user.is_active or user.pk in seen:
            continue
        seen.add(user.pk)
        unique.append(user)
    if not unique:
        return []
    done = set(
        Notification.objects.filter(message_id=message.message_id, recipient__in=[u.pk for u in unique]).values_list(
            "recipient_id", flat=True
        )
    )
    now = timezone.now()
    made = []
    for user in unique:
        if user.pk in done:
            continue
        with translation.override(language_of(user)):
            rendered = render(user)
            made.append(
                Notification(
                    recipient=user,
                    kind=kind,
                    title=str(rendered.title)[:200],
                    body=str(rendered.body),
                    url=rendered.url[:300],
                    message_id=message.message_id,
                    event_type=message.event_type,
                    created_at=now,
                )
            )
    Notification.objects.bulk_create(made)
    deliveries = _deliveries_for(made, now=now)
    if deliveries:
        Delivery.objects.bulk_create(deliveries)
        ids = [d.pk for d in deliveries]
        # Sent once the handler's transaction has committed: a rolled-back handler sends nothing. If
        # this process dies first, the periodic job sends them.
        transaction.on_commit(lambda: send_deliveries(ids=ids))
    return made


def _deliveries_for(notifications: list[Notification], *, now) -> list[Delivery]:
    """One delivery per channel the recipient wants for this kind and has an address on, due now
    or when their quiet hours end; an email to a user who chose the daily digest waits for it."""
    channels = enabled_channels()
    if not channels or not notifications:
        return []
    preferences = preferences_of([n.recipient for n in notifications])
    deliveries = []
    for notification in notifications:
        user = notification.recipient
        wants = preferences[user.pk]
        due_at = wants.quiet_end_after(now) or now
        for name, channel in channels.items():
            address = channel.address_of(user)
            if not address or not wants.wants(notification.kind, name):
                continue
            digest = name == Channel.EMAIL and wants.email_digest
            deliveries.append(
                Delivery(
                    notification=notification,
                    message_id=notification.message_id,
                    recipient=user,
                    channel=name,
                    address=address[:254],
                    state=DeliveryState.DIGEST if digest else DeliveryState.PENDING,
                    due_at=due_at,
                    created_at=now,
                )
            )
    return deliveries


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), timedelta(hours=1))


def send_deliveries(*, ids: Iterable | None = None, limit: int = 200) -> dict[str, int]:
    """Send the due deliveries (only those of `ids` when given): each claimed by a compare-and-set
    PENDING→SENDING in its own statement, so two senders never send one; sent ones are SENT, a
    failure goes back to PENDING after a backoff or, after NOTIFY_MAX_ATTEMPTS attempts, to FAILED.
    Runs outside any transaction (each step commits on its own) and never raises: it runs after a
    handler's commit and from the periodic job. Counts of sent, retried, failed and skipped (taken
    by another sender) deliveries."""
    counts = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    try:
        now = timezone.now()
        Delivery.objects.filter(state=DeliveryState.SENDING, claimed_at__lt=now - STALE_SENDING).update(
            state=DeliveryState.PENDING
        )
        due = Delivery.objects.filter(state=DeliveryState.PENDING, due_at__lte=now)
        if ids is not None:
            due = due.filter(pk__in=list(ids))
        for pk in list(due.order_by("due_at").values_list("pk", flat=True)[:limit]):
            counts[_send_one(pk)] += 1
    except Exception:
        log.exception("sending notifications failed")
    return counts


def _send_one(pk) -> str:
    claimed = Delivery.objects.filter(pk=pk, state=DeliveryState.PENDING).update(
        state=DeliveryState.SENDING, claimed_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return "skipped"  # another sender took it
    delivery = Delivery.objects.select_related("notification", "recipient").get(pk=pk)
    try:
        CHANNELS[delivery.channel].send(delivery)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if delivery.attempts >= settings.NOTIFY_MAX_ATTEMPTS:
            Delivery.objects.filter(pk=pk).update(state=DeliveryState.FAILED, last_error=error)
            log.error("notification %s by %s failed for good: %s", pk, delivery.channel, error)
            return "failed"
        Delivery.objects.filter(pk=pk).update(
            state=DeliveryState.PENDING, last_error=error, due_at=timezone.now() + _backoff(delivery.attempts)
        )
        log.warning("notification %s by %s failed (attempt %s): %s", pk, delivery.channel, delivery.attempts, error)
        return "retry"
    Delivery.objects.filter(pk=pk).update(state=DeliveryState.SENT, sent_at=timezone.now(), last_error="")
    return "sent"


def digest_cutoff(day) -> datetime:
    """When the digest of `day` (a date in the company's time zone) is due: its digest hour."""
    return timezone.make_aware(datetime.combine(day, time(digest_hour())))


def send_digests(*, limit: int = 200) -> dict[str, int]:
    """The daily email digests, from the digest hour on (EOMS_NOTIFY_DIGEST_HOUR, company time
    zone): each user with email notifications waiting for a digest, made before today's digest
    hour, gets one Digest row for today (unique per user and day) taking them, then one email
    with them; sent, the digest and its deliveries are SENT. A failed email is retried with the
    deliveries' backoff, up to NOTIFY_MAX_ATTEMPTS. Idempotent: run twice, from two processes or
    again later the same day, it sends each user one digest a day. Never raises (a periodic job).
    Counts of digests sent, retried, failed and skipped (taken by another sender)."""
    counts = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    try:
        now = timezone.now()
        today = timezone.localdate(now)
        cutoff = digest_cutoff(today)
        if now >= cutoff:
            _gather_digests(today, cutoff, now)
        Digest.objects.filter(state=DeliveryState.SENDING, claimed_at__lt=now - STALE_SENDING).update(
            state=DeliveryState.PENDING
        )
        due = Digest.objects.filter(state=DeliveryState.PENDING, due_at__lte=now)
        for pk in list(due.order_by("day", "created_at").values_list("pk", flat=True)[:limit]):
            counts[_send_digest(pk)] += 1
    except Exception:
        log.exception("sending digests failed")
    return counts


def _gather_digests(day, cutoff, now) -> None:
    waiting = Delivery.objects.filter(
        state=DeliveryState.DIGEST, channel=Channel.EMAIL, digest__isnull=True, created_at__lt=cutoff
    )
    for user_id in list(waiting.values_list("recipient_id", flat=True).distinct()):
        with transaction.atomic():
            digest = Digest.objects.select_for_update().filter(recipient_id=user_id, day=day).first()
            if digest is None:
                address = waiting.filter(recipient_id=user_id).order_by("-created_at").values_list("address", flat=True)
                try:
                    with transaction.atomic():
                        digest = Digest.objects.create(
                            recipient_id=user_id, day=day, address=address.first() or "", due_at=now, created_at=now
                        )
                except IntegrityError:
                    continue  # another process made today's digest of this user at the same moment
            elif digest.state != DeliveryState.PENDING or digest.attempts:
                continue  # today's is sent or on its way (row locked above): the rest wait for tomorrow's
            waiting.filter(recipient_id=user_id).update(digest=digest)


def _send_digest(pk) -> str:
    claimed = Digest.objects.filter(pk=pk, state=DeliveryState.PENDING).update(
        state=DeliveryState.SENDING, claimed_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return "skipped"
    digest = Digest.objects.select_related("recipient").get(pk=pk)
    notifications = list(Notification.objects.filter(deliveries__digest=digest).order_by("created_at", "id").distinct())
    if not notifications:
        Digest.objects.filter(pk=pk).update(state=DeliveryState.SENT, sent_at=timezone.now())
        return "sent"
    try:
        CHANNELS[Channel.EMAIL].send_digest(digest, notifications)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if digest.attempts >= settings.NOTIFY_MAX_ATTEMPTS:
            Digest.objects.filter(pk=pk).update(state=DeliveryState.FAILED, last_error=error)
            Delivery.objects.filter(digest=digest).update(state=DeliveryState.FAILED, last_error=error)
            log.error("digest %s failed for good: %s", pk, error)
            return "failed"
        Digest.objects.filter(pk=pk).update(
            state=DeliveryState.PENDING, last_error=error, due_at=timezone.now() + _backoff(digest.attempts)
        )
        log.warning("digest %s failed (attempt %s): %s", pk, digest.attempts, error)
        return "retry"
    sent_at = timezone.now()
    Digest.objects.filter(pk=pk).update(state=DeliveryState.SENT, sent_at=sent_at, last_error="")
    Delivery.objects.filter(digest=digest).update(state=DeliveryState.SENT, sent_at=sent_at, attempts=digest.attempts)
    return "sent"


def _take_failed(*, actor, delivery_ids, refused: str, action: str, to: str, changes) -> list[Delivery]:
    """The FAILED deliveries among `delivery_ids`, locked, each audited as `action` with
    `changes(delivery)`; administrators only (PermissionDenied with `refused` otherwise)."""
    if not has_role(actor, Role.ADMIN):
        raise PermissionDenied(refused)
    rows = list(Delivery.objects.select_for_update().filter(pk__in=list(delivery_ids), state=DeliveryState.FAILED))
    for delivery in rows:
        audit.record(
            actor=actor,
            action=action,
            object_type="notifications.delivery",
            object_id=delivery.pk,
            object_repr=f"{delivery.channel} {shown_address(delivery)}"[:200],
            changes={"state": [DeliveryState.FAILED, to], **changes(delivery)},
        )
    return rows


@transaction.atomic
def retry_deliveries(*, actor, delivery_ids) -> int:
    """An administrator sends FAILED deliveries again (after fixing the mail server, say): back to
    PENDING, due now, attempts counted afresh; audited per delivery. Deliveries in another state are
    left as they are and not counted. Others: PermissionDenied."""
    rows = _take_failed(
        actor=actor,
        delivery_ids=delivery_ids,
        refused=_("Only an administrator may send deliveries again."),
        action="notifications.delivery_retried",
        to=DeliveryState.PENDING,
        changes=lambda delivery: {"attempts": [delivery.attempts, 0]},
    )
    ids = [d.pk for d in rows]
    Delivery.objects.filter(pk__in=ids).update(
        state=DeliveryState.PENDING, attempts=0, due_at=timezone.now(), last_error=""
    )
    if ids:
        transaction.on_commit(lambda: send_deliveries(ids=ids))
    return len(ids)


@transaction.atomic
def discard_deliveries(*, actor, delivery_ids) -> int:
    """An administrator gives FAILED deliveries up for good (an address that will never work, say):
    DISCARDED, audited per delivery; they are never sent. Deliveries in another state are left as
    they are and not counted. Others: PermissionDenied."""
    rows = _take_failed(
        actor=actor,
        delivery_ids=delivery_ids,
        refused=_("Only an administrator may discard deliveries."),
        action="notifications.delivery_discarded",
        to=DeliveryState.DISCARDED,
        changes=lambda delivery: {"error": delivery.last_error[:500]},
    )
    Delivery.objects.filter(pk__in=[d.pk for d in rows]).update(state=DeliveryState.DISCARDED)
    return len(rows)


@transaction.atomic
def mark_notification_read(*, actor, notification_id) -> Notification:
    """Mark one of the actor's notifications read (NotificationNotFound for anyone else's). Already
    read: unchanged, its first read time kept."""
    notification = access_notification(actor, notification_id)
    if notification.read_at is None:
        now = timezone.now()
        # Compare-and-set: two tabs marking it at once keep the first time.
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=now)
        notification.refresh_from_db(fields=["read_at"])
    return notification


@transaction.atomic
def mark_all_notifications_read(*, actor) -> int:
    """Mark every unread notification of the actor read; how many were."""
    return list_notifications(actor=actor, unread_only=True).update(read_at=timezone.now())


OUTSIDE_CHANNELS = [c.value for c in Channel if c != Channel.IN_APP]


@transaction.atomic
def set_notification_preferences(
    *, actor, channels: dict, quiet_from=None, quiet_until=None, email_digest: bool | None = None
) -> NotificationPreferences:
    """Save the actor's own notification settings: `channels` {kind: {channel: bool}} for the
    outside channels (the in-app inbox cannot be turned off), quiet hours as two times or none,
    and whether email comes as one daily digest (`email_digest`; None keeps the current choice).
    PreferencesInvalid names the field at fault. Audited with what changed; nothing changed, nothing
    written."""
    errors = []
    clean: dict[str, dict[str, bool]] = {}
    for kind, choice in (channels or {}).items():
        if kind not in NotificationKind.values:
            errors.append({"field": f"channels.{kind}", "message": _("No such kind of notification.")})
            continue
        if not isinstance(choice, dict):
            errors.append({"field": f"channels.{kind}", "message": _("Give each channel as on or off.")})
            continue
        for channel, on in choice.items():
            if channel not in OUTSIDE_CHANNELS or not isinstance(on, bool):
                errors.append(
                    {
                        "field": f"channels.{kind}.{channel}",
                        "message": _("The in-app inbox is always on.")
                        if channel == Channel.IN_APP
                        else _("No such channel."),
                    }
                )
                continue
            clean.setdefault(kind, {})[channel] = on
    for name, value in (("quiet_from", quiet_from), ("quiet_until", quiet_until)):
        if value is not None and value.tzinfo is not None:
            errors.append(
                {
                    "field": name,
                    "message": _("Give a time of day without a time zone: quiet hours are in the company's time zone."),
                }
            )
    if (quiet_from is None) != (quiet_until is None):
        errors.append(
            {
                "field": "quiet_until" if quiet_until is None else "quiet_from",
                "message": _("Give both the start and the end of the quiet hours, or neither."),
            }
        )
    if errors:
        raise PreferencesInvalid(errors=errors)
    current = NotificationPreferences.objects.select_for_update().filter(user=actor).first()
    preferences = current or get_notification_preferences(actor=actor)
    # Stored in full (every kind and channel), so what a user chose stays as chosen when defaults change.
    merged = {
        kind: {
            channel: clean.get(kind, {}).get(channel, preferences.wants(kind, channel)) for channel in OUTSIDE_CHANNELS
        }
        for kind in NotificationKind.values
    }
    before = {
        "channels": {k: {c: preferences.wants(k, c) for c in OUTSIDE_CHANNELS} for k in NotificationKind.values},
        "quiet_from": preferences.quiet_from,
        "quiet_until": preferences.quiet_until,
        "email_digest": preferences.email_digest,
    }
    if email_digest is None:
        email_digest = preferences.email_digest
    after = {"channels": merged, "quiet_from": quiet_from, "quiet_until": quiet_until, "email_digest": email_digest}
    changes = {}
    for kind in NotificationKind.values:
        for channel in OUTSIDE_CHANNELS:
            if before["channels"][kind][channel] != merged[kind][channel]:
                changes[f"{kind}.{channel}"] = [before["channels"][kind][channel], merged[kind][channel]]
    for name in ("quiet_from", "quiet_until"):
        if before[name] != after[name]:
            changes[name] = [_time(before[name]), _time(after[name])]
    if before["email_digest"] != after["email_digest"]:
        changes["email_digest"] = [before["email_digest"], after["email_digest"]]
    if current is not None and not changes:
        return current
    preferences.channels = merged
    preferences.quiet_from = quiet_from
    preferences.quiet_until = quiet_until
    preferences.email_digest = bool(email_digest)
    if current is not None:
        preferences.version += 1
    preferences.save()
    if changes:
        audit.record(
            actor=actor,
            action="notifications.preferences_changed",
            object_type="notifications.preferences",
            object_id=actor.pk,
            object_repr=str(actor)[:200],
            changes=changes,
        )
    return preferences


def _time(value) -> str:
    return value.strftime("%H:%M") if value is not None else ""
