"""A Bearer JWT is accepted only when everything about it is ours. Each bad token here is forged in the
test with PyJWT and cryptography, independently of eoms.oauth.tokens, and, but for the one thing wrong
with it, stored as DOT stores a real one: so each check is proven on its own (the positive control
passes with the same forging)."""

import hashlib
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from eoms.oauth.keys import jwt_keyring

from .conftest import bearer, client_credentials

AUD = "http://localhost:8000/api/v1"
ISS = "http://localhost:8000"


def _claims(oauth, **changes):
    now = int(time.time())
    claims = {
        "iss": ISS,
        "aud": AUD,
        "sub": oauth.erp_id,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "client_id": oauth.erp_id,
        "scope": "orders:read",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _forge(oauth, *, key=None, alg="EdDSA", headers=None, store=True, **changes) -> str:
    ring = jwt_keyring()
    header = {"kid": ring.current_id, "typ": "at+jwt", **(headers or {})}
    token = jwt.encode(
        _claims(oauth, **changes), key if key is not None else ring.signing_key, algorithm=alg, headers=header
    )
    if store:
        AccessToken.objects.create(
            user=None,
            application=oauth.erp.application,
            token_checksum=hashlib.sha256(token.encode()).hexdigest(),
            token="",
            expires=timezone.now() + timedelta(minutes=5),
            scope="orders:read",
        )
    return token


def _assert_401(token):
    response = Client().get("/api/v1/orders", **bearer(token))
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "unauthenticated"


@pytest.mark.asvs("9.1.1")
def test_the_forging_itself_makes_a_token_that_works(oauth):
    """The control: without a defect the forged token is accepted, so each refusal below is its defect's."""
    response = Client().get("/api/v1/orders", **bearer(_forge(oauth)))
    assert response.status_code == 200, response.content


@pytest.mark.asvs("9.1.2")
def test_alg_none_is_refused(oauth):
    token = jwt.encode(
        _claims(oauth), None, algorithm="none", headers={"kid": jwt_keyring().current_id, "typ": "at+jwt"}
    )
    AccessToken.objects.create(
        application=oauth.erp.application,
        token_checksum=hashlib.sha256(token.encode()).hexdigest(),
        expires=timezone.now() + timedelta(minutes=5),
        scope="orders:read",
    )
    _assert_401(token)


@pytest.mark.asvs("9.1.2")
def test_hs256_with_the_public_key_as_secret_is_refused(oauth):
    """The algorithm confusion attack: HMAC keyed with our published public key."""
    public = jwt_keyring().signing_key.public_key().public_bytes_raw()
    _assert_401(_forge(oauth, key=public, alg="HS256"))


@pytest.mark.asvs("9.1.1")
def test_bad_signature_is_refused(oauth):
    _assert_401(_forge(oauth, key=Ed25519PrivateKey.generate()))


@pytest.mark.asvs("9.1.3")
def test_unknown_kid_is_refused(oauth):
    _assert_401(_forge(oauth, headers={"kid": "elsewhere"}))


@pytest.mark.asvs("9.2.1")
def test_expired_is_refused(oauth):
    now = int(time.time())
    _assert_401(_forge(oauth, iat=now - 700, nbf=now - 700, exp=now - 60))


@pytest.mark.asvs("9.2.1")
def test_future_nbf_is_refused(oauth):
    _assert_401(_forge(oauth, nbf=int(time.time()) + 120))


@pytest.mark.asvs("9.2.3", "10.3.1")
def test_wrong_audience_is_refused(oauth):
    _assert_401(_forge(oauth, aud="https://erp.example.com/api"))


@pytest.mark.asvs("9.1.3")
def test_wrong_issuer_is_refused(oauth):
    _assert_401(_forge(oauth, iss="https://evil.example.com"))


@pytest.mark.asvs("9.2.2")
@pytest.mark.parametrize("typ", ["JWT", "refresh+jwt", None])
def test_another_token_type_is_refused(oauth, typ):
    """An ID token (typ JWT) or anything not typed as an access token is not one."""
    token = _forge(oauth, headers={"typ": typ})
    assert jwt.get_unverified_header(token).get("typ") == typ  # None: no typ at all
    _assert_401(token)


@pytest.mark.asvs("9.2.2")
def test_missing_claims_are_refused(oauth):
    _assert_401(_forge(oauth, jti=None))
    _assert_401(_forge(oauth, client_id=None))


@pytest.mark.asvs("9.2.2")
def test_a_refresh_token_used_as_access_token_is_refused(oauth, world):
    from .test_flows import _code_tokens

    tokens = _code_tokens(oauth, world)
    assert RefreshToken.objects.count() == 1
    _assert_401(tokens["refresh_token"])


@pytest.mark.asvs("7.4.1")
def test_revoked_token_is_refused(oauth):
    token = client_credentials(oauth, scope="orders:read").json()["access_token"]
    assert Client().get("/api/v1/orders", **bearer(token)).status_code == 200
    AccessToken.objects.get().revoke()
    _assert_401(token)


@pytest.mark.asvs("7.4.1")
def test_token_whose_row_expired_is_refused(oauth):
    token = client_credentials(oauth, scope="orders:read").json()["access_token"]
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))
    _assert_401(token)


@pytest.mark.asvs("9.2.2")
def test_token_of_another_client_than_its_row_is_refused(oauth):
    """A valid signature over a client_id that is not the stored token's client."""
    _assert_401(_forge(oauth, client_id=oauth.h5_id))


@pytest.mark.asvs("10.3.2")
def test_scope_claim_wider_than_the_stored_grant_is_refused(oauth):
    _assert_401(_forge(oauth, scope="orders:read orders:write"))


def test_a_personal_api_token_still_works(world):
    from eoms.accounts.services import issue_api_token

    _, secret = issue_api_token(actor=world.pm, name="script")
    response = Client().get("/api/v1/orders", **bearer(secret))
    assert response.status_code == 200
