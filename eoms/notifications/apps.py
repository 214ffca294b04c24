from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "eoms.notifications"
    label = "notifications"
    verbose_name = _("Notifications")

    def ready(self):
        from django.utils.translation import gettext_lazy as _

        from eoms.core import periodic
        from eoms.core.dead_letters import register_failure_source
        from eoms.core.web import register_nav

        from . import handlers  # noqa: F401 (registers the event handlers with the relay)
        from .channels import enabled_channels
        from .context_processors import NotificationNav
        from .reminders import remind_stage_deadlines
        from .selectors import failed_delivery_count
        from .services import send_deliveries, send_digests

        register_nav("notification_nav", NotificationNav)
        # Deliveries that failed for good are the notifications' dead letters: the dead-letter page
        # links to their own page (send again, discard) with their count.
        register_failure_source(
            key="notifications.deliveries",
            label=_("Notification deliveries that failed"),
            url_name="notifications:deliveries",
            count=failed_delivery_count,
        )
        # Stage deadlines near and past: in-app at least, so always; one reminder per deadline,
        # recipient and channel however often it runs (reminders.py).
        periodic.register("notifications.stage_deadlines", remind_stage_deadlines, every=300)
        if enabled_channels():
            # Deliveries whose quiet hours ended, retries, and any left by a process that died
            # before sending; idempotent (each row is claimed by a compare-and-set). Without an
            # outside channel configured (no EOMS_EMAIL_HOST…) there is nothing to send.
            periodic.register("notifications.deliveries", send_deliveries, every=30)
            # The daily email digests, once the day's digest hour has come; one per user and day.
            periodic.register("notifications.digests", send_digests, every=300)
