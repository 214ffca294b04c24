"""What EOMS adds to a django-oauth-toolkit Application (the client): the scopes an administrator allows
it and a public id for URLs. The Application keeps the secret (hashed), redirect URIs and grant type."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import Application

from eoms.core.models import BaseModel

__all__ = ["ClientPolicy"]


class ClientPolicy(BaseModel):
    """One per registered client. `scopes` (space-separated, from eoms.oauth.scopes.SCOPES) bounds what
    any token of the client may carry; a client without a policy row may ask for no scope at all."""

    application = models.OneToOneField(
        Application, on_delete=models.CASCADE, related_name="eoms_policy", verbose_name=_("client")
    )
    scopes = models.TextField(_("allowed scopes"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("created by")
    )

    class Meta:
        verbose_name = _("OAuth2 client policy")
        verbose_name_plural = _("OAuth2 client policies")

    def __str__(self):
        return self.application.name
