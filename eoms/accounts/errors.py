from django.utils.translation import gettext_lazy as _

from eoms.core.errors import NotFound, ValidationFailed

__all__ = ["TokenNotFound", "InvalidMembership", "DelegationNotFound"]


class TokenNotFound(NotFound):
    code = "token.not_found"
    title = _("API token not found")


class InvalidMembership(ValidationFailed):
    code = "membership.invalid"


class DelegationNotFound(NotFound):
    code = "delegation.not_found"
    title = _("Delegation not found")
