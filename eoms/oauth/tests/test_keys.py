"""The signing keyring: parsing, rotation (newest signs, all listed verify), the published JWK Set and
the authorization server metadata, and production's refusal to start without keys."""

import base64
import subprocess
import sys

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client

from eoms.oauth.keys import JwtKeyError, jwt_key_problems, parse_jwt_keys

from .conftest import bearer, client_credentials


def _raw_key() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    return key, base64.b64encode(key.private_bytes_raw()).decode()


def _pem_key() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key, base64.b64encode(pem).decode()


def test_keyring_reads_raw_and_pem_keys_and_the_first_signs():
    new, new_text = _pem_key()
    old, old_text = _raw_key()
    ring = parse_jwt_keys(f"j2:{new_text}, j1:{old_text}")
    assert ring.current_id == "j2" and list(ring.private) == ["j2", "j1"]
    assert ring.signing_key.private_bytes_raw() == new.private_bytes_raw()
    assert ring.public_key("j1").public_bytes_raw() == old.public_key().public_bytes_raw()
    assert ring.public_key("j3") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "EOMS_JWT_KEYS is empty"),
        ("j1", "entries are <key id>:<base64 key>"),
        ("j1:!!", "key 'j1' is not valid base64"),
        ("j1:" + base64.b64encode(b"short").decode(), "key 'j1' has 5 bytes; an Ed25519 private key has 32"),
        ("j1:" + base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nxx\n").decode(), "not a readable unencrypted PEM"),
        ("j1:" + base64.b64encode(b"1" * 32).decode() + ",j1:" + base64.b64encode(b"2" * 32).decode(), "twice"),
    ],
)
def test_malformed_keyrings_are_refused_without_key_material(text, message):
    with pytest.raises(JwtKeyError) as caught:
        parse_jwt_keys(text)
    assert message in str(caught.value)
    assert "MTEx" not in str(caught.value)


@pytest.mark.asvs("11.6.1")
def test_rsa_keys_are_refused():
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(JwtKeyError, match="is not an Ed25519 key"):
        parse_jwt_keys("j1:" + base64.b64encode(pem).decode())


@pytest.mark.asvs("9.1.3")
def test_rotation_newest_signs_and_old_keys_verify_until_removed(oauth, settings):
    _, old = _raw_key()
    _, new = _raw_key()
    settings.JWT_KEYS = f"j1:{old}"
    before = client_credentials(oauth, scope="orders:read").json()["access_token"]
    assert jwt.get_unverified_header(before)["kid"] == "j1"
    settings.JWT_KEYS = f"j2:{new},j1:{old}"
    after = client_credentials(oauth, scope="orders:read").json()["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == "j2"
    for token in (before, after):
        assert Client().get("/api/v1/orders", **bearer(token)).status_code == 200
    assert [k["kid"] for k in Client().get("/.well-known/jwks.json").json()["keys"]] == ["j2", "j1"]
    settings.JWT_KEYS = f"j2:{new}"
    assert Client().get("/api/v1/orders", **bearer(before)).status_code == 401
    assert Client().get("/api/v1/orders", **bearer(after)).status_code == 200


@pytest.mark.asvs("9.1.3")
def test_jwks_publishes_public_keys_only(settings):
    key, text = _raw_key()
    settings.JWT_KEYS = f"k9:{text}"
    response = Client().get("/.well-known/jwks.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/jwk-set+json"
    public = base64.urlsafe_b64encode(key.public_key().public_bytes_raw()).rstrip(b"=").decode()
    assert response.json() == {
        "keys": [{"kty": "OKP", "crv": "Ed25519", "x": public, "kid": "k9", "alg": "EdDSA", "use": "sig"}]
    }
    assert text not in response.content.decode()


def test_authorization_server_metadata():
    body = Client().get("/.well-known/oauth-authorization-server").json()
    assert body == {
        "issuer": "http://localhost:8000",
        "authorization_endpoint": "http://localhost:8000/o/authorize/",
        "token_endpoint": "http://localhost:8000/o/token/",
        "revocation_endpoint": "http://localhost:8000/o/revoke_token/",
        "introspection_endpoint": "http://localhost:8000/o/introspect/",
        "jwks_uri": "http://localhost:8000/.well-known/jwks.json",
        "scopes_supported": [
            "accounts:read",
            "orders:read",
            "orders:write",
            "approvals:read",
            "approvals:write",
            "masterdata:read",
            "masterdata:write",
            "notifications:read",
            "notifications:write",
            "webhooks:read",
            "webhooks:write",
            "reports:read",
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "access_token_signing_alg_values_supported": ["EdDSA"],
    }


def test_production_problems():
    assert jwt_key_problems(jwt_keys="")[0].startswith("EOMS_JWT_KEYS is not set")
    assert jwt_key_problems(jwt_keys="j1:xx") == [
        "EOMS_JWT_KEYS is malformed: EOMS_JWT_KEYS key 'j1' is not valid base64."
    ]
    assert jwt_key_problems(jwt_keys="j1:" + _raw_key()[1]) == []


@pytest.mark.asvs("13.3.1")
def test_production_refuses_to_start_without_jwt_keys(tmp_path):
    from eoms.core.tests.test_production import _environment

    env = _environment(tmp_path, {"EOMS_JWT_KEYS": None})
    run = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0
    assert "EOMS_JWT_KEYS is not set" in run.stderr
    env["EOMS_JWT_KEYS"] = "j1:" + _raw_key()[1]
    ok = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr


def test_development_key_is_generated_once_and_kept(tmp_path, settings):
    settings.DATA_DIR = tmp_path
    settings.JWT_KEYS = ""
    from eoms.oauth.keys import jwt_keyring

    first = jwt_keyring()
    assert first.current_id == "dev1"
    assert (tmp_path / "jwt_keys").stat().st_mode & 0o777 == 0o600
    assert jwt_keyring().signing_key.private_bytes_raw() == first.signing_key.private_bytes_raw()
    assert [p.name for p in tmp_path.iterdir()] == ["jwt_keys"]
