from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OAuthConfig(AppConfig):
    name = "eoms.oauth"
    label = "oauth"
    verbose_name = _("OAuth2 clients")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # DOT's back-office pages would write clients and tokens around our services (no audit, no
        # event, secrets and scopes unchecked): clients are managed at /oauth/clients/ instead.
        # The admin's autodiscovery ran before this (django.contrib.admin is installed first).
        from django.contrib import admin
        from oauth2_provider import models

        from eoms.core import periodic

        from . import handlers  # noqa: F401 (registers the event handlers with the relay)
        from .services import clear_expired_tokens

        periodic.register("oauth.clear_expired", clear_expired_tokens, every=3600)

        for model in (models.Application, models.AccessToken, models.RefreshToken, models.Grant, models.IDToken):
            if admin.site.is_registered(model):
                admin.site.unregister(model)
