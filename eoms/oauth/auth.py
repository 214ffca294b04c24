"""API authentication by OAuth2 access token (a JWT), with the scope check every API request passes."""

from django.utils.translation import gettext

from .errors import InsufficientScope
from .scopes import required_scope
from .tokens import verify_access_token

__all__ = ["authenticate_access_token"]


def authenticate_access_token(request, token: str):
    """The user an access token acts as, or None (401) when it is not a valid, unrevoked access token of
    ours. Raises InsufficientScope (403) when its scopes do not cover this request's context and method.
    Marks the request `eoms_client_id = "oauth:<client id>"` (read by the rate limiter)."""
    verified = verify_access_token(token)
    if verified is None:
        return None
    needed = required_scope(request.method, request.path_info)
    if needed not in verified.scopes:
        raise InsufficientScope(
            gettext("This token's scopes (%(scopes)s) do not include %(needed)s, which this request needs.")
            % {"scopes": " ".join(sorted(verified.scopes)) or "-", "needed": needed},
            required_scope=needed,
        )
    request.user = verified.user
    request.eoms_client_id = f"oauth:{verified.client_id}"
    request.eoms_oauth_scopes = verified.scopes
    return verified.user
