"""Reads of OAuth2 clients and tokens."""

from django.db.models import Q
from django.utils.translation import gettext
from oauth2_provider.models import AccessToken, Application, RefreshToken

from eoms.accounts.roles import Role
from eoms.accounts.selectors import has_role

from .errors import ClientNotFound
from .models import ClientPolicy
from .scopes import scope_list

__all__ = [
    "allowed_scopes",
    "stored_access_token",
    "list_clients",
    "access_client",
    "active_token_counts",
    "can_manage_clients",
]


def can_manage_clients(actor) -> bool:
    return has_role(actor, Role.ADMIN)


def allowed_scopes(application) -> list[str]:
    policy = ClientPolicy.objects.filter(application=application).only("scopes").first()
    return scope_list(policy.scopes) if policy else []


def stored_access_token(token_checksum: str):
    return (
        AccessToken.objects.select_related("user", "application", "application__user")
        .filter(token_checksum=token_checksum)
        .first()
    )


def list_clients(*, actor):
    if not can_manage_clients(actor):
        return ClientPolicy.objects.none()
    return ClientPolicy.objects.select_related("application", "application__user").order_by("application__name")


def access_client(actor, policy_id) -> ClientPolicy:
    """The client with this public id; NotFound for a missing one and for anyone but an administrator."""
    policy = list_clients(actor=actor).filter(pk=policy_id).first()
    if policy is None:
        raise ClientNotFound(gettext("No such OAuth2 client."))
    return policy


def active_token_counts(application: Application) -> dict[str, int]:
    return {
        "access": AccessToken.objects.filter(application=application).count(),
        "refresh": RefreshToken.objects.filter(application=application, revoked__isnull=True).count(),
    }


def tokens_of_user(user):
    """Access and refresh tokens that act as `user`: issued to them, or to a client they own."""
    mine = Q(user=user) | Q(application__user=user)
    return AccessToken.objects.filter(mine), RefreshToken.objects.filter(mine, revoked__isnull=True)
