from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core import checks
from django.db import transaction
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "eoms.accounts"
    label = "accounts"
    verbose_name = _("Accounts")

    def ready(self):
        from .setup import ensure_roles

        post_migrate.connect(ensure_roles, sender=self, dispatch_uid="eoms.accounts.ensure_roles")
        # Every sign-in, whichever door (the sign-in page, the second factor's page, the back
        # office's login form), is an audit entry: Django's own signal is the one place all pass.
        user_logged_in.connect(audit_sign_in, dispatch_uid="eoms.accounts.audit_sign_in")
        user_logged_out.connect(audit_sign_out, dispatch_uid="eoms.accounts.audit_sign_out")
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


def audit_sign_in(sender, request, user, **kwargs):
    from .services import record_signed_in

    with transaction.atomic():
        record_signed_in(user=user, second_factor=bool(getattr(request, "eoms_second_factor", False)))


def audit_sign_out(sender, request, user, **kwargs):
    from .services import record_signed_out

    if user is not None:
        with transaction.atomic():
            record_signed_out(user=user)
