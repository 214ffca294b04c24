from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    name = "eoms.orders"
    label = "orders"
    verbose_name = _("Orders")

    def ready(self):
        from eoms.approvals.subjects import register
        from eoms.core import periodic

        from . import summary
        from .approval import OrderSubject

        register(OrderSubject())
        periodic.register("orders.compact_summary", summary.compact, every=60)
