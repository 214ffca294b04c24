"""Who may manage webhooks: administrators only (a webhook sends every event it names, of every
project, outside EOMS)."""

from django.utils.translation import gettext as _

from eoms.accounts.roles import Role
from eoms.accounts.selectors import has_role
from eoms.core.errors import PermissionDenied

__all__ = ["can_manage_webhooks", "require_webhook_admin"]


def can_manage_webhooks(actor) -> bool:
    return has_role(actor, Role.ADMIN)


def require_webhook_admin(actor) -> None:
    if not can_manage_webhooks(actor):
        raise PermissionDenied(_("Only an administrator may manage webhooks."))
