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
    "list_authorized_clients",
    "access_authorized_client",
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


def list_authorized_clients(*, actor) -> list[dict]:
    """The clients `actor` has authorized that still hold a live token as them: per client its policy,
    the scopes granted and when the latest token was issued (newest first)."""
    from django.utils import timezone

    by_app: dict[int, dict] = {}
    live_access = AccessToken.objects.filter(user=actor, expires__gt=timezone.now())
    live_refresh = RefreshToken.objects.filter(user=actor, revoked__isnull=True)
    for kind, rows in (("access", live_access), ("refresh", live_refresh)):
        for app_id, created, scope in rows.values_list(
            "application_id", "created", "access_token__scope" if kind == "refresh" else "scope"
        ):
            entry = by_app.setdefault(app_id, {"scopes": set(), "latest": created})
            entry["scopes"].update((scope or "").split())
            entry["latest"] = max(entry["latest"], created)
    policies = ClientPolicy.objects.select_related("application").filter(application_id__in=by_app)
    result = [
        {
            "policy": p,
            "scopes": scope_list(" ".join(by_app[p.application_id]["scopes"])),
            "latest": by_app[p.application_id]["latest"],
        }
        for p in policies
    ]
    return sorted(result, key=lambda e: e["latest"], reverse=True)


def access_authorized_client(actor, policy_id) -> ClientPolicy:
    """A client `actor` has authorized; NotFound for any other (whether or not it exists)."""
    for entry in list_authorized_clients(actor=actor):
        if entry["policy"].pk == policy_id:
            return entry["policy"]
    raise ClientNotFound(gettext("No such OAuth2 client."))
