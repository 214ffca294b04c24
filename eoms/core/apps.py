from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "eoms.core"
    label = "core"
    verbose_name = "EOMS core"
