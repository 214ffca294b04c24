from django.utils.translation import gettext_lazy as _

from eoms.core.errors import NotFound, ValidationFailed

__all__ = ["NotificationNotFound", "PreferencesInvalid"]


class NotificationNotFound(NotFound):
    """Also for another user's notification: it does not exist for the actor."""

    code = "notification.not_found"
    title = _("Notification not found")


class PreferencesInvalid(ValidationFailed):
    code = "notification.preferences_invalid"
    title = _("The notification settings are not valid")
