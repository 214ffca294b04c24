"""The consent view and the public documents of the authorization server (the JWK Set, RFC 8414 metadata)."""

import re
from urllib.parse import urlsplit

from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET
from oauth2_provider.models import Application
from oauth2_provider.views import AuthorizationView

from eoms.core.middleware import CONTENT_SECURITY_POLICY

from .keys import ALGORITHM, jwks
from .scopes import SCOPES
from .tokens import issuer

__all__ = ["ConsentView", "jwks_view", "metadata_view"]

# A CSP source expression: a scheme ("com.example.app:") or scheme and host ("https://h5.example.com:8443").
_SOURCE = re.compile(r"^[a-z][a-z0-9+.-]*:(//[A-Za-z0-9.\-]+(:[0-9]{1,5})?)?$")


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    source = f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
    return source if _SOURCE.match(source) else ""


class ConsentView(AuthorizationView):
    """DOT's authorization view (login required, consent form in our layout). Our CSP says
    `form-action 'self'`, and browsers apply form-action to the redirect that answers the form: Allow
    would end on a blocked redirect. The consent page's policy also allows the origins of the client's
    registered redirect URIs (an administrator registered them; DOT checks the redirect against them)."""

    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        client_id = request.POST.get("client_id") or request.GET.get("client_id") or ""
        application = Application.objects.filter(client_id=client_id[:100]).only("redirect_uris").first()
        if application is not None:
            origins = sorted({o for o in map(_origin, application.redirect_uris.split()) if o})
            if origins:
                response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
                    "form-action 'self'", "form-action 'self' " + " ".join(origins)
                )
        return response


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
