"""Stage-deadline reminders, a periodic job (registered in apps.py, run by the relay, `eoms beat`
workers or `eoms tick`): an order that is not settled or cancelled and whose stage deadline is
within EOMS_NOTIFY_DEADLINE_NEAR_HOURS is "near", past it "overdue"; its stage owner and the
project's managers are told once.

There is no event behind a reminder, so its `message_id` is derived from what it reminds of (a
UUIDv5 of the kind, the order, when it entered the stage and the deadline): the unique
(message_id, recipient) and (message_id, recipient, channel) rules of notifications make a reminder
once per deadline, recipient and channel however often the job runs, from however many processes.
A new stage or a moved deadline is a new key, so a new reminder. Only the current state is
reminded of: an order first seen already overdue gets the overdue reminder, not both.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from eoms.accounts.roles import ProjectRole
from eoms.accounts.selectors import members_with_role
from eoms.orders.selectors import stage_deadlines_before
from eoms.orders.state import OrderState

from .conf import deadline_near_hours
from .models import Notification, NotificationKind
from .services import Rendered, notify

__all__ = ["remind_stage_deadlines", "reminder_id"]

log = logging.getLogger("eoms.notifications")

# Fixed forever: changing it would send every open reminder again.
NAMESPACE = uuid.UUID("0b6f6a52-52f1-4c47-9a55-0c1a5a0e7d11")
EVENT_TYPES = {
    NotificationKind.STAGE_DEADLINE_NEAR: "notifications.stage_deadline_near",
    NotificationKind.STAGE_OVERDUE: "notifications.stage_overdue",
}


@dataclass(frozen=True)
class Reminder:
    """What notify() needs of an event, for a reminder that has none."""

    message_id: uuid.UUID
    event_type: str


def reminder_id(kind: str, order) -> uuid.UUID:
    return uuid.uuid5(
        NAMESPACE, f"{kind}|{order.pk}|{order.stage_entered_at.isoformat()}|{order.stage_deadline.isoformat()}"
    )


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def remind_stage_deadlines(*, batch: int = 500) -> dict[str, int]:
    """Tell the stage owner and the project's managers of each order whose stage deadline is near
    or past (not settled or cancelled), once per deadline. Counts of notifications made."""
    now = timezone.now()
    horizon = now + timedelta(hours=deadline_near_hours())
    counts = {"near": 0, "overdue": 0}
    candidates = stage_deadlines_before(horizon)
    last = None
    while True:
        page = list(_page(candidates, last, batch))
        if not page:
            break
        last = page[-1]
        keyed = []
        for order in page:
            kind = (
                NotificationKind.STAGE_OVERDUE if order.stage_deadline < now else NotificationKind.STAGE_DEADLINE_NEAR
            )
            keyed.append((order, kind, reminder_id(kind, order)))
        done = set(
            Notification.objects.filter(message_id__in=[k for *_x, k in keyed]).values_list("message_id", flat=True)
        )
        for order, kind, key in keyed:
            if key in done:
                continue
            made = _remind(order, kind, key)
            counts["overdue" if kind == NotificationKind.STAGE_OVERDUE else "near"] += made
        if len(page) < batch:
            break
    return counts


def _page(candidates, last, batch):
    """The next `batch` candidates after `last` (keyset pagination on deadline, id)."""
    if last is None:
        return candidates[:batch]
    after = Q(stage_deadline__gt=last.stage_deadline) | Q(stage_deadline=last.stage_deadline, id__gt=last.pk)
    return candidates.filter(after)[:batch]


def _remind(order, kind: str, key: uuid.UUID) -> int:
    recipients = []
    if order.stage_owner_id:
        recipients += list(get_user_model().objects.filter(pk=order.stage_owner_id, is_active=True))
    recipients += list(members_with_role(order.project_id, ProjectRole.PM).order_by("username"))
    try:
        url = reverse("orders:detail", args=[order.pk])
    except NoReverseMatch:
        url = ""

    def render(user) -> Rendered:
        values = {
            "number": order.number,
            "title": order.title,
            "state": str(OrderState(order.state).label),
            "time": _when(order.stage_deadline),
        }
        if kind == NotificationKind.STAGE_OVERDUE:
            return Rendered(
                _("Overdue: %(number)s %(title)s") % values,
                _("Order %(number)s %(title)s was due to leave the stage %(state)s by %(time)s.") % values,
                url,
            )
        return Rendered(
            _("Deadline near: %(number)s %(title)s") % values,
            _("Order %(number)s %(title)s is due to leave the stage %(state)s by %(time)s.") % values,
            url,
        )

    try:
        with transaction.atomic():
            return len(
                notify(message=Reminder(key, EVENT_TYPES[kind]), recipients=recipients, kind=kind, render=render)
            )
    except IntegrityError:
        # Another process made this reminder at the same moment: it is made, once.
        log.info("stage reminder %s of order %s made by another process", kind, order.pk)
        return 0
