import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from oauth2_provider.models import Application

from eoms.oauth.services import register_client

REDIRECT = "https://h5.example.com/callback"


class OAuthClients:
    """Clients registered through the service, as an administrator does, with the secrets shown once."""

    def __init__(self, world):
        self.world = world
        self.erp, self.erp_secret = register_client(
            actor=world.admin,
            name="ERP 对接",
            grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            client_type=Application.CLIENT_CONFIDENTIAL,
            scopes=["orders:read", "orders:write", "masterdata:read", "accounts:read"],
            owner=world.pm,
        )
        self.h5, _ = register_client(
            actor=world.admin,
            name="Mobile H5",
            grant_type=Application.GRANT_AUTHORIZATION_CODE,
            client_type=Application.CLIENT_PUBLIC,
            scopes=["orders:read", "approvals:read", "approvals:write"],
            redirect_uris=REDIRECT,
        )

    @property
    def erp_id(self):
        return self.erp.application.client_id

    @property
    def h5_id(self):
        return self.h5.application.client_id


@pytest.fixture
def oauth(world):
    return OAuthClients(world)


def basic(client_id: str, secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def client_credentials(oauth, scope: str | None = None, secret: str | None = None):
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    return Client().post("/o/token/", data, **basic(oauth.erp_id, secret or oauth.erp_secret))


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def signed_in(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def authorize_params(oauth, *, scope: str, challenge: str | None = None, method: str | None = "S256") -> dict:
    """The query of an authorization request of the mobile H5 client (None values left out)."""
    params = {
        "response_type": "code",
        "client_id": oauth.h5_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "code_challenge": challenge,
        "code_challenge_method": method if challenge else None,
    }
    return {k: v for k, v in params.items() if v is not None}


def authorize(browser: Client, oauth, *, challenge: str, scope="orders:read approvals:read", method="S256"):
    """The user's consent through the real authorize view: returns the code the redirect carries."""
    params = {**authorize_params(oauth, scope=scope, challenge=challenge, method=method), "state": "st-123"}
    page = browser.get("/o/authorize/", params)
    assert page.status_code == 200, page.content[:500]
    form = {**params, "allow": "Authorize"}
    answer = browser.post("/o/authorize/", form)
    assert answer.status_code == 302, answer.content[:500]
    location = urlsplit(answer["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["st-123"]
    return query["code"][0]


def exchange(oauth, code: str, verifier: str | None):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": oauth.h5_id}
    if verifier is not None:
        data["code_verifier"] = verifier
    return Client().post("/o/token/", data)
