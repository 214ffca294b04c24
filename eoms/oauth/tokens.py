"""Access tokens as JWTs (RFC 9068), minted through django-oauth-toolkit's ACCESS_TOKEN_GENERATOR so that
DOT still stores each one (by its SHA-256 checksum) for revocation and introspection.

Header ``{"alg": "EdDSA", "typ": "at+jwt", "kid": …}``; claims iss, aud, sub (the user's id, or the
client id for client credentials), exp, nbf, iat, jti, scope and client_id. `verify_access_token`
accepts only what `generate_access_token` makes: our algorithm, a kid of the keyring, the at+jwt type,
our issuer and audience, a time window that holds now, and a row DOT still has (revoking deletes it).
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from django.conf import settings
from django.utils import timezone

from .keys import ALGORITHM, jwt_keyring

__all__ = ["TOKEN_TYPE", "issuer", "audience", "generate_access_token", "verify_access_token", "Verified"]

TOKEN_TYPE = "at+jwt"
LEEWAY_SECONDS = 5


def issuer() -> str:
    return settings.PUBLIC_URL


def audience() -> str:
    return f"{settings.PUBLIC_URL}/api/v1"


def generate_access_token(request) -> str:
    """DOT's ACCESS_TOKEN_GENERATOR: called by oauthlib with its request (client, user, scopes, expires_in)."""
    ring = jwt_keyring()
    now = int(datetime.now(UTC).timestamp())
    client_id = request.client.client_id
    user = getattr(request, "user", None)
    claims = {
        "iss": issuer(),
        "aud": audience(),
        "sub": str(user.pk) if getattr(user, "pk", None) else client_id,
        "iat": now,
        "nbf": now,
        "exp": now + int(request.expires_in),
        "jti": uuid.uuid4().hex,
        "client_id": client_id,
        "scope": " ".join(request.scopes or ()),
    }
    request.eoms_jti = claims["jti"]  # for the audit entry of the issue, which never holds the token
    return jwt.encode(
        claims, ring.signing_key, algorithm=ALGORITHM, headers={"kid": ring.current_id, "typ": TOKEN_TYPE}
    )


@dataclass(frozen=True)
class Verified:
    user: object
    client_id: str
    scopes: frozenset
    jti: str


def checksum(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def verify_access_token(token: str) -> Verified | None:
    """The user, client and scopes of a valid, unrevoked access token; None for anything else."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE:
        return None
    key = jwt_keyring().public_key(str(header.get("kid", "")))
    if key is None:
        return None
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience(),
            issuer=issuer(),
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "sub", "exp", "nbf", "iat", "jti", "client_id", "scope"]},
        )
    except jwt.PyJWTError:
        return None
    from .selectors import stored_access_token

    row = stored_access_token(checksum(token))
    if row is None or row.expires <= timezone.now() or row.application.client_id != claims["client_id"]:
        return None
    user = row.user or row.application.user  # client credentials act as the client's owner
    if user is None or not user.is_active:
        return None
    # The stored row's scope is authoritative (it is what DOT granted); the claim must agree with it.
    scopes = frozenset(row.scope.split())
    if scopes != frozenset(str(claims["scope"]).split()):
        return None
    return Verified(user=user, client_id=claims["client_id"], scopes=scopes, jti=str(claims["jti"]))
