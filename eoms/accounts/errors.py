from django.utils.translation import gettext_lazy as _

from eoms.core.errors import DomainError, NotFound, ValidationFailed

__all__ = ["TokenNotFound", "InvalidMembership", "DelegationNotFound", "ReauthenticationFailed", "TooManyAttempts"]


class TokenNotFound(NotFound):
    code = "token.not_found"
    title = _("API token not found")


class InvalidMembership(ValidationFailed):
    code = "membership.invalid"


class DelegationNotFound(NotFound):
    code = "delegation.not_found"
    title = _("Delegation not found")


class ReauthenticationFailed(ValidationFailed):
    """The current password or the two-factor code given to confirm a change was wrong (or the code
    was used already); `errors` names the field."""

    code = "reauthentication.failed"


class TooManyAttempts(DomainError):
    """Too many failed sign-ins or codes for this account or address: nothing is checked until
    `retry_after` seconds have passed (eoms.accounts.throttling)."""

    code = "sign_in.throttled"
    status = 429
    title = _("Too many attempts")

    def __init__(self, detail: str = "", *, retry_after: int, **kwargs):
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after
