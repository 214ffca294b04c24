"""Reads of notifications, always the actor's own: another user's notification does not exist for
the actor (NotificationNotFound, 404), the same answer as a missing one."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from eoms.accounts.roles import Role
from eoms.accounts.selectors import has_role
from eoms.core.crypto import mask_phone
from eoms.core.errors import PermissionDenied

from .errors import NotificationNotFound
from .models import Delivery, DeliveryState, Notification, NotificationPreferences

__all__ = [
    "list_notifications",
    "unread_count",
    "access_notification",
    "get_notification_preferences",
    "preferences_of",
    "can_manage_deliveries",
    "list_deliveries",
    "failed_delivery_count",
    "shown_address",
]

# The states an administrator pages through on the deliveries page: the dead letters of the outside
# channels (FAILED), those given up (DISCARDED), and the ones still on their way, to see a backlog.
ADMIN_STATES = (DeliveryState.FAILED, DeliveryState.DISCARDED, DeliveryState.PENDING)


def list_notifications(*, actor, unread_only: bool = False) -> QuerySet[Notification]:
    """The actor's notifications, newest first."""
    if not getattr(actor, "is_authenticated", False):
        return Notification.objects.none()
    qs = Notification.objects.filter(recipient=actor)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    return qs


def unread_count(*, actor) -> int:
    """One COUNT over the (recipient, read_at) index: cheap enough for every page header."""
    if not getattr(actor, "is_authenticated", False):
        return 0
    return Notification.objects.filter(recipient=actor, read_at__isnull=True).count()


def access_notification(actor, notification_id) -> Notification:
    try:
        found = list_notifications(actor=actor).filter(pk=notification_id).first()
    except (ValueError, TypeError, ValidationError):
        found = None
    if found is None:
        raise NotificationNotFound(_("No such notification."))
    return found


def get_notification_preferences(*, actor) -> NotificationPreferences:
    """The actor's own settings; the defaults (every channel on, no quiet hours) when never saved."""
    found = NotificationPreferences.objects.filter(user=actor).first()
    return found if found is not None else NotificationPreferences(user=actor)


def preferences_of(users) -> dict:
    """Settings of each of these users by id, in one query (defaults for those who have none)."""
    users = list(users)
    saved = {p.user_id: p for p in NotificationPreferences.objects.filter(user__in=[u.pk for u in users])}
    return {u.pk: saved.get(u.pk) or NotificationPreferences(user=u) for u in users}


def can_manage_deliveries(actor) -> bool:
    return has_role(actor, Role.ADMIN)


def list_deliveries(*, actor, state: str = DeliveryState.FAILED) -> QuerySet[Delivery]:
    """Deliveries in one state, the most recent first, with their notification and recipient: for
    administrators only (PermissionDenied for anyone else)."""
    if not can_manage_deliveries(actor):
        raise PermissionDenied(_("Only administrators may see notification deliveries."))
    return (
        Delivery.objects.filter(state=state).select_related("notification", "recipient").order_by("-created_at", "-id")
    )


def failed_delivery_count() -> int:
    return Delivery.objects.filter(state=DeliveryState.FAILED).count()


def shown_address(delivery: Delivery) -> str:
    """A mobile number (SMS, a robot's @-mention) is masked like every phone number on screen; an
    email address or a name is shown as it is."""
    address = delivery.address
    return mask_phone(address) if address.lstrip("+").isdigit() else address
