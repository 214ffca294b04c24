from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WebhooksConfig(AppConfig):
    name = "eoms.webhooks"
    label = "webhooks"
    verbose_name = _("Webhooks")

    def ready(self):
        from eoms.core import periodic

        from .handlers import register_handlers
        from .services import send_due_deliveries

        register_handlers()
        # Retries whose backoff has passed, and deliveries left by a process that died before sending.
        # Idempotent: each delivery is claimed by a compare-and-set before it is sent.
        periodic.register("webhooks.deliveries", send_due_deliveries, every=15)
