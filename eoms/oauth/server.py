"""The oauthlib server and validator EOMS runs django-oauth-toolkit with.

The server offers only what EOMS uses: the authorization code grant with PKCE S256 (no "plain"
challenge, no implicit or password grant), client credentials and refresh tokens. The validator audits
every token issued, refreshed or revoked and every failed client authentication, never a token value.
"""

import base64
import binascii
import hashlib
from datetime import timedelta
from urllib.parse import unquote_plus

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2 import Server
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256

from eoms.core import audit

__all__ = ["EomsServer", "EomsValidator"]


class EomsServer(Server):
    def __init__(self, request_validator, *args, **kwargs):
        super().__init__(request_validator, *args, **kwargs)
        # An instance attribute: the class's table (with "plain") stays as oauthlib has it.
        self.auth_grant._code_challenge_methods = {"S256": code_challenge_method_s256}
        self._response_types = {"code": self.auth_grant}
        self._grant_types = {
            "authorization_code": self.auth_grant,
            "client_credentials": self.credentials_grant,
            "refresh_token": self.refresh_grant,
        }


def _client_id(request) -> str:
    client = getattr(request, "client", None)
    return getattr(client, "client_id", None) or (getattr(request, "client_id", None) or "")


def _record(*, actor, action: str, client_id: str, changes: dict) -> None:
    with transaction.atomic():
        audit.record(
            actor=actor,
            action=action,
            object_type="oauth.client",
            object_id=client_id[:64],
            object_repr=client_id[:200],
            changes=changes,
        )


class EomsValidator(OAuth2Validator):
    def _claimed_client_id(self, request) -> str:
        """The client id a failed authentication claimed (from HTTP Basic or the body), never the secret."""
        basic = self._extract_basic_auth(request)
        if basic:
            try:
                return unquote_plus(base64.b64decode(basic).decode("utf-8", "replace").split(":", 1)[0])
            except (binascii.Error, ValueError):
                return ""
        return str(getattr(request, "client_id", None) or "")

    def authenticate_client(self, request, *args, **kwargs):
        authenticated = super().authenticate_client(request, *args, **kwargs)
        if not authenticated:
            _record(
                actor=None,
                action="oauth.client_authentication_failed",
                client_id=self._claimed_client_id(request)[:64],
                changes={"grant_type": getattr(request, "grant_type", None) or ""},
            )
        return authenticated

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        """Client credentials act as the client's owner: none for a client whose owner is gone or disabled."""
        if grant_type == "client_credentials":
            owner = request.client.user
            if owner is None or not owner.is_active:
                return False
        return super().validate_grant_type(client_id, grant_type, client, request, *args, **kwargs)

    def save_bearer_token(self, token, request, *args, **kwargs):
        with transaction.atomic():
            result = super().save_bearer_token(token, request, *args, **kwargs)
            client = request.client
            refreshed = request.grant_type == "refresh_token"
            audit.record(
                actor=request.user or client.user,
                action="oauth.token_refreshed" if refreshed else "oauth.token_issued",
                object_type="oauth.client",
                object_id=client.client_id,
                object_repr=client.name[:200],
                changes={
                    "grant_type": request.grant_type,
                    "scope": token.get("scope", ""),
                    "jti": getattr(request, "eoms_jti", ""),
                    "refresh_token": bool(token.get("refresh_token")),
                    "expires_in": token.get("expires_in"),
                },
            )
        return result

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        valid = super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)
        if valid:
            # DOT's expiry slides with each rotation; the family also ends a fixed time after the user
            # consented (its first refresh token), however often it was used: the user consents again.
            family = request.refresh_token_instance.token_family
            first = RefreshToken.objects.filter(token_family=family).aggregate(first=Min("created"))["first"]
            limit = timedelta(seconds=settings.OAUTH_REFRESH_TOKEN_MAX_SECONDS)
            if first is not None and first + limit <= timezone.now():
                return False
        if not valid:
            checksum = hashlib.sha256(refresh_token.encode("utf-8")).hexdigest()
            reused = RefreshToken.objects.filter(token_checksum=checksum, revoked__isnull=False).first()
            if reused is not None:
                # A rotated (or revoked) refresh token presented again: someone holds a copy. DOT has
                # revoked its whole family (REFRESH_TOKEN_REUSE_PROTECTION); say so in the audit.
                _record(
                    actor=reused.user,
                    action="oauth.refresh_token_reused",
                    client_id=reused.application.client_id if reused.application_id else _client_id(request),
                    changes={"family_revoked": True},
                )
        return valid

    def revoke_token(self, token, token_type_hint, request, *args, **kwargs):
        checksum = hashlib.sha256(token.encode("utf-8")).hexdigest()
        application_id = getattr(request.client, "pk", None)
        kinds = [
            kind
            for kind, model in (("access_token", AccessToken), ("refresh_token", RefreshToken))
            if application_id is not None
            and model.objects.filter(token_checksum=checksum, application_id=application_id).exists()
        ]
        with transaction.atomic():
            super().revoke_token(token, token_type_hint, request, *args, **kwargs)
            if kinds:
                audit.record(
                    actor=request.client.user,
                    action="oauth.token_revoked",
                    object_type="oauth.client",
                    object_id=request.client.client_id,
                    object_repr=request.client.name[:200],
                    changes={"token_type": kinds[0]},
                )
