"""The authorization server's endpoints (django-oauth-toolkit under /o/, namespace "oauth2_provider"),
its well-known documents at the root, and the pages under /oauth/ ("oauth")."""

from django.urls import include, path
from oauth2_provider import views as dot

from . import views

oauth2_patterns = (
    [
        path("authorize/", views.ConsentView.as_view(), name="authorize"),
        path("token/", dot.TokenView.as_view(), name="token"),
        path("revoke_token/", dot.RevokeTokenView.as_view(), name="revoke-token"),
        path("introspect/", dot.IntrospectTokenView.as_view(), name="introspect"),
    ],
    "oauth2_provider",
)

urlpatterns = [
    path("o/", include(oauth2_patterns)),
    path(".well-known/jwks.json", views.jwks_view, name="oauth-jwks"),
    path(".well-known/oauth-authorization-server", views.metadata_view, name="oauth-metadata"),
    path("oauth/", include("eoms.oauth.web.urls")),
]
