from django.utils.translation import gettext_lazy as _

from eoms.core.errors import NotFound, ValidationFailed

__all__ = ["TokenNotFound", "InvalidMembership"]


class TokenNotFound(NotFound):
    code = "token.not_found"
    title = _("API token not found")


class InvalidMembership(ValidationFailed):
    code = "membership.invalid"
