"""The grants through the real views of django-oauth-toolkit: client credentials, authorization code with
PKCE (S256 only), refresh token rotation with reuse detection, revocation; each audited without token values."""

import json
from datetime import timedelta

import jwt
import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, RefreshToken

from eoms.core.models import AuditEntry

from .conftest import (
    authorize,
    authorize_params,
    basic,
    bearer,
    client_credentials,
    exchange,
    pkce_pair,
    signed_in,
)


def _jwks_key(kid: str):
    body = Client().get("/.well-known/jwks.json").json()
    (jwk,) = [k for k in body["keys"] if k["kid"] == kid]
    return jwt.PyJWK(jwk).key


@pytest.mark.asvs("9.1.1", "9.2.1")
def test_client_credentials_issues_a_short_lived_jwt_that_calls_the_api(oauth, world):
    response = client_credentials(oauth, scope="orders:read")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 600, "orders:read")
    assert "refresh_token" not in body
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["typ"]) == ("EdDSA", "at+jwt")
    claims = jwt.decode(token, _jwks_key(header["kid"]), algorithms=["EdDSA"], audience="http://localhost:8000/api/v1")
    assert sorted(claims) == ["aud", "client_id", "exp", "iat", "iss", "jti", "nbf", "scope", "sub"]
    assert (claims["iss"], claims["sub"], claims["client_id"], claims["scope"]) == (
        "http://localhost:8000",
        oauth.erp_id,
        oauth.erp_id,
        "orders:read",
    )
    assert claims["exp"] - claims["iat"] == 600 and claims["nbf"] == claims["iat"]
    # Stored by DOT for revocation and introspection, as a checksum only (RFC 9700 token storage).
    row = AccessToken.objects.get()
    assert (row.token, row.user_id, row.scope) == ("", None, "orders:read")
    # The client acts as its owner, the project manager: their orders list answers.
    api = Client().get("/api/v1/orders", **bearer(token))
    assert api.status_code == 200, api.content
    entry = AuditEntry.objects.get(action="oauth.token_issued")
    assert (entry.actor_id, entry.object_id) == (world.pm.pk, oauth.erp_id)
    assert entry.changes == {
        "grant_type": "client_credentials",
        "scope": "orders:read",
        "jti": claims["jti"],
        "refresh_token": False,
        "expires_in": 600,
    }
    assert token not in json.dumps(list(AuditEntry.objects.values("changes", "object_repr")), default=str)


@pytest.mark.asvs("10.4.11")
def test_client_credentials_without_scope_gets_what_the_client_is_allowed(oauth):
    body = client_credentials(oauth).json()
    assert body["scope"] == "accounts:read orders:read orders:write masterdata:read"


@pytest.mark.asvs("10.4.11")
def test_client_credentials_cannot_ask_for_more_than_allowed(oauth):
    response = client_credentials(oauth, scope="orders:read webhooks:write")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert AccessToken.objects.count() == 0


@pytest.mark.asvs("10.4.10")
def test_wrong_client_secret_is_refused_and_audited(oauth):
    response = client_credentials(oauth, scope="orders:read", secret="not-the-secret")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    entry = AuditEntry.objects.get(action="oauth.client_authentication_failed")
    assert (entry.actor_id, entry.object_id, entry.changes) == (
        None,
        oauth.erp_id,
        {"grant_type": "client_credentials"},
    )
    assert "not-the-secret" not in json.dumps(entry.changes)
    assert AccessToken.objects.count() == 0


@pytest.mark.asvs("10.4.6", "10.4.2")
def test_authorization_code_with_pkce_full_flow(oauth, world):
    browser = signed_in(world.approver)
    verifier, challenge = pkce_pair()
    code = authorize(browser, oauth, challenge=challenge)
    response = exchange(oauth, code, verifier)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["scope"] == "orders:read approvals:read" and body["refresh_token"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["client_id"]) == (str(world.approver.pk), oauth.h5_id)
    api = Client().get("/api/v1/approvals/tasks", **bearer(body["access_token"]))
    assert api.status_code == 200, api.content
    assert AuditEntry.objects.get(action="oauth.token_issued").actor_id == world.approver.pk
    # The code works once.
    assert exchange(oauth, code, verifier).json()["error"] == "invalid_grant"


@pytest.mark.asvs("10.7.2")
def test_consent_page_names_the_client_and_scopes_in_our_layout(oauth, world):
    browser = signed_in(world.approver)
    _, challenge = pkce_pair()
    page = browser.get("/o/authorize/", authorize_params(oauth, scope="orders:read", challenge=challenge))
    html = page.content.decode()
    assert page.status_code == 200
    assert "<strong>Mobile H5</strong> asks to use EOMS as you" in html
    assert "<li>Read engineering orders</li>" in html
    assert 'id="nav-' in html  # base.html's navigation: our layout
    zh = browser.get(page.request["PATH_INFO"] + "?" + page.request["QUERY_STRING"], HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "授权访问" in zh.content.decode()


@pytest.mark.asvs("10.4.6")
@pytest.mark.parametrize("verifier", [None, "a-wrong-verifier-a-wrong-verifier-a-wrong-verifier"])
def test_code_without_or_with_a_wrong_verifier_is_refused(oauth, world, verifier):
    browser = signed_in(world.approver)
    _, challenge = pkce_pair()
    code = authorize(browser, oauth, challenge=challenge)
    response = exchange(oauth, code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == ("invalid_request" if verifier is None else "invalid_grant")
    assert AccessToken.objects.count() == 0


@pytest.mark.asvs("10.4.6")
@pytest.mark.parametrize("method", ["plain", None])
def test_plain_or_missing_challenge_method_is_refused(oauth, world, method):
    params = authorize_params(oauth, scope="orders:read", challenge="x" * 43, method=method)
    answer = signed_in(world.approver).get("/o/authorize/", params)
    assert answer.status_code == 302
    assert "error=invalid_request" in answer["Location"]
    assert "code=" not in answer["Location"]


@pytest.mark.asvs("10.4.6")
def test_authorization_without_challenge_is_refused(oauth, world):
    answer = signed_in(world.approver).get("/o/authorize/", authorize_params(oauth, scope="orders:read"))
    assert answer.status_code == 302
    assert answer["Location"] == (
        "https://h5.example.com/callback?error=invalid_request&error_description=Code+challenge+required."
    )


def _code_tokens(oauth, world):
    browser = signed_in(world.approver)
    verifier, challenge = pkce_pair()
    return exchange(oauth, authorize(browser, oauth, challenge=challenge), verifier).json()


def _refresh(oauth, refresh_token):
    return Client().post(
        "/o/token/", {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": oauth.h5_id}
    )


@pytest.mark.asvs("10.4.5")
def test_refresh_rotates_and_the_old_refresh_token_is_dead(oauth, world):
    first = _code_tokens(oauth, world)
    second = _refresh(oauth, first["refresh_token"])
    assert second.status_code == 200, second.content
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert AuditEntry.objects.filter(action="oauth.token_refreshed").count() == 1
    # The access token of the first pair is gone with its rotation; the new one works.
    assert Client().get("/api/v1/orders", **bearer(first["access_token"])).status_code == 401
    assert Client().get("/api/v1/orders", **bearer(second["access_token"])).status_code == 200


@pytest.mark.asvs("10.4.5")
def test_reusing_a_rotated_refresh_token_revokes_the_family(oauth, world):
    first = _code_tokens(oauth, world)
    second = _refresh(oauth, first["refresh_token"]).json()
    replay = _refresh(oauth, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    entry = AuditEntry.objects.get(action="oauth.refresh_token_reused")
    assert (entry.actor_id, entry.object_id, entry.changes) == (
        world.approver.pk,
        oauth.h5_id,
        {"family_revoked": True},
    )
    # The thief's copy killed the legitimate holder's refresh token too, and its access token.
    assert _refresh(oauth, second["refresh_token"]).json()["error"] == "invalid_grant"
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 0
    assert Client().get("/api/v1/orders", **bearer(second["access_token"])).status_code == 401


@pytest.mark.asvs("7.4.1")
def test_revocation_endpoint_ends_an_access_token(oauth):
    token = client_credentials(oauth, scope="orders:read").json()["access_token"]
    assert Client().get("/api/v1/orders", **bearer(token)).status_code == 200
    response = Client().post("/o/revoke_token/", {"token": token}, **basic(oauth.erp_id, oauth.erp_secret))
    assert response.status_code == 200
    assert AccessToken.objects.count() == 0
    api = Client().get("/api/v1/orders", **bearer(token))
    assert api.status_code == 401 and api["Content-Type"] == "application/problem+json"
    entry = AuditEntry.objects.get(action="oauth.token_revoked")
    assert (entry.object_id, entry.changes) == (oauth.erp_id, {"token_type": "access_token"})


@pytest.mark.asvs("7.4.1")
def test_revoking_a_refresh_token_ends_its_access_token(oauth, world):
    tokens = _code_tokens(oauth, world)
    response = Client().post(
        "/o/revoke_token/",
        {"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": oauth.h5_id},
    )
    assert response.status_code == 200
    assert Client().get("/api/v1/orders", **bearer(tokens["access_token"])).status_code == 401
    assert _refresh(oauth, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_introspection_tells_a_client_about_its_token(oauth):
    token = client_credentials(oauth, scope="orders:read").json()["access_token"]
    response = Client().post("/o/introspect/", {"token": token}, **basic(oauth.erp_id, oauth.erp_secret))
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["active"], body["scope"], body["client_id"]) == (True, "orders:read", oauth.erp_id)


@pytest.mark.asvs("10.4.11")
def test_an_app_cannot_ask_a_user_for_scopes_it_is_not_allowed(oauth, world):
    _, challenge = pkce_pair()
    params = authorize_params(oauth, scope="orders:read webhooks:write", challenge=challenge)
    answer = signed_in(world.approver).get("/o/authorize/", params)
    assert answer.status_code == 302
    assert answer["Location"].startswith("https://h5.example.com/callback?error=invalid_scope")
    assert "code=" not in answer["Location"]


@pytest.mark.asvs("16.2.5")
def test_no_token_or_secret_reaches_the_logs_even_at_debug(oauth, world, caplog):
    """oauthlib logs whole token responses at DEBUG: its loggers are held at WARNING (settings.LOGGING)."""
    import logging

    caplog.set_level(logging.DEBUG)
    for name in ("oauthlib", "oauth2_provider"):  # caplog lowers only the root; ours stay as configured
        assert logging.getLogger(name).level == logging.WARNING
    token = client_credentials(oauth, scope="orders:read").json()["access_token"]
    Client().get("/api/v1/orders", **bearer(token))
    pair = _code_tokens(oauth, world)
    rotated = _refresh(oauth, pair["refresh_token"]).json()
    Client().post("/o/revoke_token/", {"token": token}, **basic(oauth.erp_id, oauth.erp_secret))
    client_credentials(oauth, scope="orders:read", secret="wrong-secret-value")
    assert caplog.records, "nothing was logged at all: the test would prove nothing"
    text = caplog.text
    for value in (token, pair["access_token"], pair["refresh_token"], rotated["refresh_token"], oauth.erp_secret):
        assert value not in text
    assert "wrong-secret-value" not in text


def test_consent_page_lets_its_form_redirect_to_the_clients_registered_origins_only(oauth, world):
    """Browsers apply CSP form-action to the redirect answering Allow (e2e/test_oauth_consent.py)."""
    _, challenge = pkce_pair()
    page = signed_in(world.approver).get(
        "/o/authorize/", authorize_params(oauth, scope="orders:read", challenge=challenge)
    )
    policy = page["Content-Security-Policy"]
    assert "form-action 'self' https://h5.example.com;" in policy
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    # Any other page keeps form-action to itself.
    assert "form-action 'self';" in Client().get("/login/")["Content-Security-Policy"]


def test_csp_sources_of_redirect_uris():
    from eoms.oauth.views import _origin

    assert _origin("https://h5.example.com:8443/cb?x=1") == "https://h5.example.com:8443"
    assert _origin("com.example.eoms:/oauth/callback") == "com.example.eoms:"
    assert _origin("https://evil.example.com;script-src/x") == ""


@pytest.mark.asvs("10.4.8")
def test_a_refresh_token_family_ends_a_fixed_time_after_consent_however_often_rotated(oauth, world, settings):
    import time_machine
    from django.utils import timezone

    settings.OAUTH_REFRESH_TOKEN_MAX_SECONDS = 3600
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        tokens = _code_tokens(oauth, world)
    with time_machine.travel(start + timedelta(minutes=50), tick=False):
        tokens = _refresh(oauth, tokens["refresh_token"]).json()  # rotated: a new token of the same family
        assert tokens["refresh_token"]
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        # The new token is 11 minutes old and DOT's sliding expiry (30 days) is far, but the family is over.
        refused = _refresh(oauth, tokens["refresh_token"])
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
