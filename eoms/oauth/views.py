"""The public documents of the authorization server: the JWK Set and the RFC 8414 metadata."""

from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from .keys import ALGORITHM, jwks
from .scopes import SCOPES
from .tokens import issuer

__all__ = ["jwks_view", "metadata_view"]


@require_GET
def jwks_view(request):
    """Public keys only (the private parts never leave the keyring), every key that may still verify."""
    return JsonResponse(jwks(), content_type="application/jwk-set+json")


@require_GET
def metadata_view(request):
    base = issuer()
    return JsonResponse(
        {
            "issuer": base,
            "authorization_endpoint": base + reverse("oauth2_provider:authorize"),
            "token_endpoint": base + reverse("oauth2_provider:token"),
            "revocation_endpoint": base + reverse("oauth2_provider:revoke-token"),
            "introspection_endpoint": base + reverse("oauth2_provider:introspect"),
            "jwks_uri": base + reverse("oauth-jwks"),
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "access_token_signing_alg_values_supported": [ALGORITHM],
        }
    )
