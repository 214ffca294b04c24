from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "eoms.notifications"
    label = "notifications"
    verbose_name = _("Notifications")

    def ready(self):
        from eoms.core.web import register_nav

        from . import handlers  # noqa: F401 (registers the event handlers with the relay)
        from .context_processors import NotificationNav

        register_nav("notification_nav", NotificationNav)
