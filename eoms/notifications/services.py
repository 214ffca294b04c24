"""Every write of notifications.

`notify` is called by the event handlers (handlers.py) inside the handler's transaction, which
also holds the relay's ProcessedMessage row: a redelivered event is skipped before it gets here, and
the unique (message_id, recipient) constraint keeps it single even if it were not.

Marking read is the recipient's own bookkeeping of their inbox, not a business change: it writes
no audit entry and no event (it would double the audit chain's size for nothing anyone audits).
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation

from .models import Notification
from .selectors import access_notification, list_notifications

__all__ = ["Rendered", "language_of", "notify", "mark_notification_read", "mark_all_notifications_read"]


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
    return made


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
