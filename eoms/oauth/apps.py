from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OAuthConfig(AppConfig):
    name = "eoms.oauth"
    label = "oauth"
    verbose_name = _("OAuth2 clients")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import handlers  # noqa: F401 (registers the event handlers with the relay)
