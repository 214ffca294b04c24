"""The JWT signing keyring: Ed25519 keys with ids, the first signs, all of them verify.

EOMS_JWT_KEYS is ``j2:<base64>,j1:<base64>``; each value is the base64 of either the 32-byte Ed25519
private key (seed) or a PEM private key (``openssl genpkey -algorithm ed25519 | base64 -w0``). Rotation:
put a new key first and keep the old one listed for as long as the tokens it signed live (at most
EOMS_OAUTH_ACCESS_TOKEN_SECONDS), then remove it. In development, when unset, one key is generated
once into the data directory (file ``jwt_keys``); EOMS_MODE=production refuses to start without it.

This module imports nothing of Django's models: settings.py calls `jwt_key_problems` before setup.
"""

import base64
import binascii
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "ALGORITHM",
    "JwtKeyError",
    "JwtKeyring",
    "parse_jwt_keys",
    "jwt_keyring",
    "jwks",
    "jwt_key_problems",
    "refuse_missing_jwt_keys",
]

ALGORITHM = "EdDSA"
DEV_KEYS_FILE = "jwt_keys"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

log = logging.getLogger("eoms.oauth")


class JwtKeyError(Exception):
    """A malformed keyring; the message never holds key material."""


@dataclass(frozen=True)
class JwtKeyring:
    current_id: str
    private: dict  # kid -> Ed25519PrivateKey

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self.private[self.current_id]

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self.private.get(kid)
        return key.public_key() if key is not None else None


def _load_key(kid: str, material: str) -> Ed25519PrivateKey:
    try:
        raw = base64.b64decode(material.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise JwtKeyError(f"EOMS_JWT_KEYS key {kid!r} is not valid base64")
    if raw.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError):
            raise JwtKeyError(f"EOMS_JWT_KEYS key {kid!r} is not a readable unencrypted PEM private key")
        if not isinstance(key, Ed25519PrivateKey):
            raise JwtKeyError(f"EOMS_JWT_KEYS key {kid!r} is not an Ed25519 key")
        return key
    if len(raw) != 32:
        raise JwtKeyError(f"EOMS_JWT_KEYS key {kid!r} has {len(raw)} bytes; an Ed25519 private key has 32")
    return Ed25519PrivateKey.from_private_bytes(raw)


def parse_jwt_keys(text: str) -> JwtKeyring:
    """``kid:base64,kid:base64``; the first entry signs. Raises JwtKeyError when malformed."""
    entries = [e.strip() for e in (text or "").split(",") if e.strip()]
    if not entries:
        raise JwtKeyError("EOMS_JWT_KEYS is empty")
    keys: dict = {}
    for entry in entries:
        kid, sep, material = entry.partition(":")
        kid = kid.strip()
        if not sep or not _KEY_ID.match(kid):
            raise JwtKeyError(
                "EOMS_JWT_KEYS entries are <key id>:<base64 key>, the id letters, digits, '-' or '_' (at most 32)"
            )
        if kid in keys:
            raise JwtKeyError(f"EOMS_JWT_KEYS names key id {kid!r} twice")
        keys[kid] = _load_key(kid, material)
    return JwtKeyring(current_id=next(iter(keys)), private=keys)


def _dev_keys(data_dir: Path) -> str:
    path = Path(data_dir) / DEV_KEYS_FILE
    if not path.exists():
        # Written whole under a private name, then linked in place: a process starting at the same time
        # (test workers, web and relay) finds either no file or the complete one, never a half-written one.
        tmp = path.with_name(f".{DEV_KEYS_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"dev1:{base64.b64encode(secrets.token_bytes(32)).decode()}\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: read theirs
        else:
            log.warning("EOMS_JWT_KEYS is not set: generated a development signing key in %s", path)
        finally:
            tmp.unlink()
    return path.read_text().strip()


_cache: dict = {}


def jwt_keyring() -> JwtKeyring:
    from django.conf import settings

    text = settings.JWT_KEYS or _dev_keys(settings.DATA_DIR)
    ring = _cache.get(text)
    if ring is None:
        ring = _cache[text] = parse_jwt_keys(text)
    return ring


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwks(ring: JwtKeyring | None = None) -> dict:
    """The public keys of the keyring as a JWK Set (RFC 7517, OKP keys of RFC 8037); never a private part."""
    ring = ring or jwt_keyring()
    keys = []
    for kid, private in ring.private.items():
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys.append({"kty": "OKP", "crv": "Ed25519", "x": _b64url(public), "kid": kid, "alg": ALGORITHM, "use": "sig"})
    return {"keys": keys}


def jwt_key_problems(*, jwt_keys: str) -> list[str]:
    if not jwt_keys:
        return [
            "EOMS_JWT_KEYS is not set: give the OAuth2 access-token signing keys, e.g. j1:<32 random bytes in base64> "
            "(python3 -c 'import base64, os; print(\"j1:\" + base64.b64encode(os.urandom(32)).decode())')."
        ]
    try:
        parse_jwt_keys(jwt_keys)
    except JwtKeyError as exc:
        return [f"EOMS_JWT_KEYS is malformed: {exc}."]
    return []


def refuse_missing_jwt_keys(**values) -> None:
    problems = jwt_key_problems(**values)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ImproperlyConfigured(f"EOMS_MODE=production refuses to start without JWT signing keys:\n{lines}")
