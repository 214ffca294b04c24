from django.utils.translation import gettext_lazy as _

from eoms.core.errors import NotFound, PermissionDenied, ValidationFailed

__all__ = ["InsufficientScope", "ClientNotFound", "ClientInvalid"]


class InsufficientScope(PermissionDenied):
    code = "oauth.insufficient_scope"
    title = _("Insufficient scope")


class ClientNotFound(NotFound):
    code = "oauth.client_not_found"


class ClientInvalid(ValidationFailed):
    code = "oauth.client_invalid"
