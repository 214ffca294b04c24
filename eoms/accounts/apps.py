from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "eoms.accounts"
    label = "accounts"
    verbose_name = _("Accounts")

    def ready(self):
        from .setup import ensure_roles

        post_migrate.connect(ensure_roles, sender=self, dispatch_uid="eoms.accounts.ensure_roles")
        checks.register(check_two_factor_roles)


def check_two_factor_roles(app_configs=None, **kwargs):
    """EOMS_2FA_REQUIRED_ROLES names only roles that exist: a misspelt role would silently require
    two-factor authentication of nobody."""
    from django.conf import settings

    from .roles import Role

    unknown = sorted(set(settings.TWO_FACTOR_REQUIRED_ROLES) - set(Role.values))
    if not unknown:
        return []
    return [
        checks.Error(
            f"EOMS_2FA_REQUIRED_ROLES names unknown role(s): {', '.join(unknown)}",
            hint=f"Use these: {', '.join(Role.values)}.",
            id="eoms.E2FA",
        )
    ]
