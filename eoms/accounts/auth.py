"""API authentication: the page session (with CSRF), a personal bearer token (eoms_…) or an OAuth2 access
token (a JWT, eoms.oauth), whose scopes are checked against the request."""

from ninja.security import HttpBearer, SessionAuth

from eoms.oauth.auth import authenticate_access_token

from . import twofactor
from .services import TOKEN_PREFIX, active_api_token

__all__ = ["BearerToken", "Session", "API_AUTH"]


class BearerToken(HttpBearer):
    openapi_scheme = "bearer"

    def authenticate(self, request, token):
        if not token.startswith(TOKEN_PREFIX):
            # Sets request.eoms_client_id = "oauth:<client id>" for the per-client rate limit.
            return authenticate_access_token(request, token)
        found = active_api_token(token)
        if found is None:
            return None
        request.user = found.user
        # The credential, for the per-client rate limit (eoms.core.ratelimit).
        request.eoms_client_id = f"token:{found.id}"
        return found.user


class Session(SessionAuth):
    """The signed-in page user; unsafe methods need the CSRF token as pages send it. A session that has
    not passed the second factor its user needs is nobody here (eoms.accounts.twofactor; its gate has
    normally signed such a session out before the API runs)."""

    def authenticate(self, request, key):
        user = super().authenticate(request, key)
        if user is not None and twofactor.session_state(request) != "ok":
            return None
        return user


API_AUTH = [BearerToken(), Session()]
