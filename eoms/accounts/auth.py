"""API authentication: the page session (with CSRF) or a personal bearer token."""

from ninja.security import HttpBearer, SessionAuth

from .services import authenticate_api_token

__all__ = ["BearerToken", "Session", "API_AUTH"]


class BearerToken(HttpBearer):
    openapi_scheme = "bearer"

    def authenticate(self, request, token):
        user = authenticate_api_token(token)
        if user is not None:
            request.user = user
        return user


class Session(SessionAuth):
    """The signed-in page user; unsafe methods need the CSRF token as pages send it."""


API_AUTH = [BearerToken(), Session()]
