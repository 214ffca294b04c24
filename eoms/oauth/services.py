"""Every write about OAuth2 clients and their tokens; each audited, each in one transaction.
(Tokens themselves are issued by django-oauth-toolkit's views through eoms.oauth.server.)"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, Application, RefreshToken

from eoms.core.errors import PermissionDenied
from eoms.core.events import emit

from . import events
from .errors import ClientInvalid
from .models import ClientPolicy
from .scopes import SCOPES
from .selectors import access_authorized_client, access_client, can_manage_clients, tokens_of_user

__all__ = [
    "register_client",
    "rotate_client_secret",
    "delete_client",
    "revoke_user_tokens",
    "revoke_authorization",
    "clear_expired_tokens",
    "GRANT_TYPES",
]

GRANT_TYPES = (Application.GRANT_AUTHORIZATION_CODE, Application.GRANT_CLIENT_CREDENTIALS)


def _require_admin(actor) -> None:
    if not can_manage_clients(actor):
        raise PermissionDenied(gettext("Only an administrator may manage OAuth2 clients."))


@transaction.atomic
def register_client(
    *,
    actor,
    name: str,
    grant_type: str,
    client_type: str,
    scopes: list[str] | tuple[str, ...],
    redirect_uris: str = "",
    owner=None,
) -> tuple[ClientPolicy, str]:
    """Register a client and return it with its secret, which is stored only hashed ("" for a public
    client, which authenticates with PKCE alone). Client credentials need a confidential client and an
    active owner, whose roles the client's tokens act with; the authorization code grant needs at least
    one redirect URI. Fails with ClientInvalid (422) listing every problem."""
    _require_admin(actor)
    owner = owner or actor
    name = (name or "").strip()
    redirect_uris = " ".join((redirect_uris or "").split())
    errors = []
    if not name:
        errors.append({"field": "name", "message": gettext("Give the client a name.")})
    if grant_type not in GRANT_TYPES:
        errors.append({"field": "grant_type", "message": gettext("Choose authorization code or client credentials.")})
    if client_type not in (Application.CLIENT_CONFIDENTIAL, Application.CLIENT_PUBLIC):
        errors.append({"field": "client_type", "message": gettext("Choose confidential or public.")})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        errors.append({"field": "scopes", "message": gettext("Unknown scope(s): %(s)s") % {"s": ", ".join(unknown)}})
    if not scopes:
        errors.append({"field": "scopes", "message": gettext("Allow the client at least one scope.")})
    if grant_type == Application.GRANT_CLIENT_CREDENTIALS:
        if client_type != Application.CLIENT_CONFIDENTIAL:
            errors.append(
                {"field": "client_type", "message": gettext("Client credentials need a confidential client.")}
            )
        if not owner.is_active:
            errors.append({"field": "owner", "message": gettext("Choose an active user as the client's owner.")})
    if grant_type == Application.GRANT_AUTHORIZATION_CODE and not redirect_uris:
        errors.append({"field": "redirect_uris", "message": gettext("Give at least one redirect URI.")})
    if errors:
        raise ClientInvalid(errors=errors)
    secret = generate_client_secret() if client_type == Application.CLIENT_CONFIDENTIAL else ""
    application = Application(
        name=name[:255],
        user=owner,
        client_type=client_type,
        authorization_grant_type=grant_type,
        redirect_uris=redirect_uris,
        client_secret=secret,
        hash_client_secret=True,
        algorithm=Application.NO_ALGORITHM,
    )
    try:
        application.full_clean(exclude=["client_secret"])
    except ValidationError as exc:
        raise ClientInvalid(
            errors=[{"field": f, "message": str(m)} for f, messages in exc.message_dict.items() for m in messages]
        )
    application.save()
    ordered = [s for s in SCOPES if s in set(scopes)]
    policy = ClientPolicy.objects.create(application=application, scopes=" ".join(ordered), created_by=actor)
    emit(
        events.ClientRegistered(
            id=policy.id, client_id=application.client_id, grant_type=grant_type, scopes=tuple(ordered)
        ),
        actor=actor,
        object_repr=application.name,
        changes={
            "name": application.name,
            "client_id": application.client_id,
            "client_type": client_type,
            "grant_type": grant_type,
            "redirect_uris": redirect_uris,
            "scopes": ordered,
            "owner": owner.username,
        },
    )
    return policy, secret


@transaction.atomic
def rotate_client_secret(*, actor, policy_id) -> tuple[ClientPolicy, str]:
    """A new secret for a confidential client (the old one stops working at once); returned once."""
    _require_admin(actor)
    policy = access_client(actor, policy_id)
    application = Application.objects.select_for_update().get(pk=policy.application_id)
    if application.client_type != Application.CLIENT_CONFIDENTIAL:
        raise ClientInvalid(errors=[{"field": "client_type", "message": gettext("A public client has no secret.")}])
    secret = generate_client_secret()
    application.client_secret = secret
    application.save(update_fields=["client_secret", "updated"])
    emit(
        events.ClientSecretRotated(id=policy.id, client_id=application.client_id),
        actor=actor,
        object_repr=application.name,
        changes={"client_secret": "(changed)"},
    )
    return policy, secret


@transaction.atomic
def delete_client(*, actor, policy_id) -> None:
    """Delete a client with every grant and token it holds: its tokens stop working at once."""
    _require_admin(actor)
    policy = access_client(actor, policy_id)
    application = policy.application
    client_id, name, policy_pk = application.client_id, application.name, policy.pk
    application.delete()  # cascades to the policy, grants, access and refresh tokens
    emit(events.ClientDeleted(id=policy_pk, client_id=client_id), actor=actor, object_repr=name)


@transaction.atomic
def revoke_user_tokens(*, actor, user) -> tuple[int, int]:
    """End every OAuth2 token acting as `user` (theirs, and those of clients they own): access tokens
    are deleted, refresh tokens marked revoked. Used when a user is disabled. Returns the two counts."""
    if actor is not None and actor.pk != user.pk:
        _require_admin(actor)
    access, refresh = tokens_of_user(user)
    refreshed = refresh.update(revoked=timezone.now())
    deleted = access.delete()[1].get(access.model._meta.label, 0)
    if deleted or refreshed:
        emit(
            events.UserTokensRevoked(id=user.pk, access_tokens=deleted, refresh_tokens=refreshed),
            actor=actor,
            object_repr=user.username,
            changes={"access_tokens": deleted, "refresh_tokens": refreshed},
        )
    return deleted, refreshed


@transaction.atomic
def revoke_authorization(*, actor, policy_id) -> tuple[int, int]:
    """The user withdraws their consent to a client: every token the client holds as them ends now
    (access tokens deleted, refresh tokens revoked). NotFound for a client they have not authorized."""
    policy = access_authorized_client(actor, policy_id)
    application = policy.application
    refreshed = RefreshToken.objects.filter(user=actor, application=application, revoked__isnull=True).update(
        revoked=timezone.now()
    )
    deleted = (
        AccessToken.objects.filter(user=actor, application=application).delete()[1].get(AccessToken._meta.label, 0)
    )
    emit(
        events.AuthorizationRevoked(id=policy.pk, client_id=application.client_id, user_id=actor.pk),
        actor=actor,
        object_repr=application.name,
        changes={"access_tokens": deleted, "refresh_tokens": refreshed},
    )
    return deleted, refreshed


def clear_expired_tokens() -> dict[str, int]:
    """The periodic job "oauth.clear_expired": DOT's own sweep of expired access tokens and grants, and of
    refresh tokens revoked or dead for longer than EOMS_OAUTH_REFRESH_TOKEN_SECONDS. Housekeeping of
    rows that no longer authenticate anything: not audited (their issue and revocation were). Idempotent.
    How many rows of each kind went (counted around the sweep: rows made meanwhile are not counted)."""
    from oauth2_provider.models import clear_expired, get_access_token_model, get_grant_model, get_refresh_token_model

    kinds = {"access_tokens": get_access_token_model(), "refresh_tokens": get_refresh_token_model()}
    kinds["grants"] = get_grant_model()
    before = {name: model.objects.count() for name, model in kinds.items()}
    clear_expired()
    return {name: max(0, before[name] - model.objects.count()) for name, model in kinds.items()}
