from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApprovalsConfig(AppConfig):
    name = "eoms.approvals"
    label = "approvals"
    verbose_name = _("Approvals")

    def ready(self):
        from eoms.core import periodic

        from .services import process_timers

        # Reminders and timeouts are checked every minute; process_timers is idempotent.
        periodic.register("approvals.timers", process_timers, every=60)
