"""API authentication: the page session (with CSRF) or a personal bearer token."""

from ninja.security import HttpBearer, SessionAuth

from .services import active_api_token

__all__ = ["BearerToken", "Session", "API_AUTH"]


class BearerToken(HttpBearer):
    openapi_scheme = "bearer"

    def authenticate(self, request, token):
        found = active_api_token(token)
        if found is None:
            return None
        request.user = found.user
        # The credential, for the per-client rate limit (eoms.core.ratelimit).
        request.eoms_client_id = f"token:{found.id}"
        return found.user


class Session(SessionAuth):
    """The signed-in page user; unsafe methods need the CSRF token as pages send it."""


API_AUTH = [BearerToken(), Session()]
