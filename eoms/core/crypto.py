"""Field-level encryption: AES-256-GCM with a keyring, and HMAC-SHA256 blind indexes.

A value is sealed as the envelope ``v1:<key id>:<nonce b64>:<ciphertext+tag b64>``: a random 96-bit
nonce per value, and associated data ``<table>|<column>|<row id>`` so that a ciphertext copied to
another row or column fails to open. Opening picks the key by the id in the envelope, so values sealed
with an older key keep opening until `eoms keys rotate` has re-sealed them with the current one.

Keys come from EOMS_FIELD_KEYS (``k2:<base64 32 bytes>,k1:<base64 32 bytes>``, the first is current)
and the blind-index key from EOMS_BLIND_INDEX_KEY (base64, at least 32 bytes), never from the code or
SECRET_KEY. In development, when they are unset, random keys are generated once and kept in the data
directory (file ``field_keys``), with a warning; EOMS_MODE=production refuses to start without them
(eoms.core.production). See docs/decisions/0009-field-encryption.md.
"""

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "VERSION",
    "CryptoError",
    "UnknownKey",
    "TamperedValue",
    "Keyring",
    "parse_keyring",
    "parse_blind_index_key",
    "keyring",
    "blind_index_key",
    "encrypt",
    "decrypt",
    "blind_index",
    "key_id_of",
    "seal_cell",
    "open_cell",
    "mask_phone",
    "mask_id_card",
    "mask_bank_account",
]

VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
DEV_KEYS_FILE = "field_keys"

log = logging.getLogger("eoms.crypto")


class CryptoError(Exception):
    """A field value or a key that cannot be used; the message never holds key material or plaintext."""


class UnknownKey(CryptoError):
    pass


class TamperedValue(CryptoError):
    pass


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError(f"{what} is not valid base64")


@dataclass(frozen=True)
class Keyring:
    current_id: str
    keys: dict  # key id -> 32 bytes

    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise UnknownKey(
                f"field value sealed with key id {key_id!r}, which is not in EOMS_FIELD_KEYS "
                f"(known: {', '.join(self.keys)}); put that key back until `eoms keys rotate` has run"
            )


def parse_keyring(text: str) -> Keyring:
    """``id:base64,id:base64``; the first entry is the current key. Raises CryptoError when malformed."""
    entries = [e.strip() for e in (text or "").split(",") if e.strip()]
    if not entries:
        raise CryptoError("EOMS_FIELD_KEYS is empty")
    keys: dict[str, bytes] = {}
    for entry in entries:
        key_id, sep, material = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not _KEY_ID.match(key_id):
            raise CryptoError(
                "EOMS_FIELD_KEYS entries are <key id>:<base64 key>, the id letters, digits, '-' or '_' (at most 32)"
            )
        if key_id in keys:
            raise CryptoError(f"EOMS_FIELD_KEYS names key id {key_id!r} twice")
        key = _b64decode(material, f"EOMS_FIELD_KEYS key {key_id!r}")
        if len(key) != KEY_BYTES:
            raise CryptoError(f"EOMS_FIELD_KEYS key {key_id!r} has {len(key)} bytes; AES-256 needs {KEY_BYTES}")
        keys[key_id] = key
    return Keyring(current_id=next(iter(keys)), keys=keys)


def parse_blind_index_key(text: str) -> bytes:
    key = _b64decode(text or "", "EOMS_BLIND_INDEX_KEY")
    if len(key) < KEY_BYTES:
        raise CryptoError(f"EOMS_BLIND_INDEX_KEY has {len(key)} bytes; give at least {KEY_BYTES}")
    return key


def _dev_keys(data_dir: Path) -> tuple[str, str]:
    """The development keyring and blind-index key, generated once and kept in the data directory."""
    path = Path(data_dir) / DEV_KEYS_FILE
    if not path.exists():
        body = (
            f"dev1:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}\n"
            f"{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}\n"
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race: read theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(body)
            log.warning(
                "EOMS_FIELD_KEYS and EOMS_BLIND_INDEX_KEY are not set: generated development keys in %s; "
                "set both in production",
                path,
            )
    lines = path.read_text().split()
    if len(lines) != 2:
        raise CryptoError(f"{path} is damaged: expected a keyring line and a blind-index key line")
    return lines[0], lines[1]


_cache: dict = {}


def _configured() -> tuple[str, str]:
    from django.conf import settings

    field_keys, index_key = settings.FIELD_KEYS, settings.BLIND_INDEX_KEY
    if not field_keys or not index_key:
        dev_field, dev_index = _dev_keys(settings.DATA_DIR)
        field_keys, index_key = field_keys or dev_field, index_key or dev_index
    return field_keys, index_key


def keyring() -> Keyring:
    field_keys, _ = _configured()
    ring = _cache.get(("ring", field_keys))
    if ring is None:
        ring = _cache[("ring", field_keys)] = parse_keyring(field_keys)
    return ring


def blind_index_key() -> bytes:
    _, index_key = _configured()
    key = _cache.get(("index", index_key))
    if key is None:
        key = _cache[("index", index_key)] = parse_blind_index_key(index_key)
    return key


def _aad(table: str, column: str, row_id) -> bytes:
    return f"{table}|{column}|{row_id}".encode()


def encrypt(plaintext: str, *, table: str, column: str, row_id, ring: Keyring | None = None) -> str:
    """Seal `plaintext` for one cell with the current key."""
    ring = ring or keyring()
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(ring.key(ring.current_id)).encrypt(nonce, plaintext.encode(), _aad(table, column, row_id))
    return f"{VERSION}:{ring.current_id}:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"


def key_id_of(envelope: str) -> str:
    parts = envelope.split(":")
    if len(parts) != 4 or parts[0] != VERSION:
        raise TamperedValue("not a field-encryption envelope (expected v1:<key id>:<nonce>:<ciphertext>)")
    return parts[1]


def decrypt(envelope: str, *, table: str, column: str, row_id, ring: Keyring | None = None) -> str:
    """Open a sealed cell. Raises UnknownKey for a key id not in the keyring and TamperedValue for an
    envelope that was changed, truncated or moved to another table, column or row."""
    ring = ring or keyring()
    key_id = key_id_of(envelope)
    key = ring.key(key_id)
    _, _, nonce_b64, sealed_b64 = envelope.split(":")
    try:
        nonce = base64.b64decode(nonce_b64, validate=True)
        sealed = base64.b64decode(sealed_b64, validate=True)
    except (binascii.Error, ValueError):
        raise TamperedValue(f"{table}.{column} of row {row_id}: the envelope is not valid base64")
    if len(nonce) != NONCE_BYTES:
        raise TamperedValue(f"{table}.{column} of row {row_id}: the nonce is not {NONCE_BYTES} bytes")
    try:
        return AESGCM(key).decrypt(nonce, sealed, _aad(table, column, row_id)).decode()
    except InvalidTag:
        raise TamperedValue(
            f"{table}.{column} of row {row_id} does not authenticate: the value was altered or belongs to "
            "another row or column"
        )


def blind_index(normalised: str, *, table: str, column: str) -> str:
    """HMAC-SHA256 (hex) of an already normalised value, in the domain of one table and column so that
    equal values in different columns do not give equal indexes. Empty stays empty."""
    if not normalised:
        return ""
    message = f"{table}|{column}\x00{normalised}".encode()
    return hmac.new(blind_index_key(), message, hashlib.sha256).hexdigest()


# ------------------------------------------------------------------------------------------ model cells


def seal_cell(obj, field: str, clear: str, *, normalised: str) -> dict:
    """The column values that store `clear` as `field` of the row `obj` (a model with ``<field>_enc``
    and ``<field>_bidx`` columns and its primary key already set): ``{field_enc: envelope, field_bidx:
    index}``, both empty for an empty value. Bound to the row by its table, field name and primary key."""
    if not clear:
        return {f"{field}_enc": "", f"{field}_bidx": ""}
    if obj.pk is None:
        raise CryptoError(f"{type(obj).__name__}.{field}: the row id must be known before its value is sealed")
    table = obj._meta.db_table
    return {
        f"{field}_enc": encrypt(clear, table=table, column=field, row_id=obj.pk),
        f"{field}_bidx": blind_index(normalised, table=table, column=field),
    }


def open_cell(obj, field: str) -> str:
    """The clear value of `field` of the row `obj` ("" when empty); raises CryptoError rather than guess."""
    envelope = getattr(obj, f"{field}_enc")
    if not envelope:
        return ""
    return decrypt(envelope, table=obj._meta.db_table, column=field, row_id=obj.pk)


# ------------------------------------------------------------------------------------------ masking


def mask_phone(value: str) -> str:
    """138****1234: the network prefix and the last four digits."""
    if not value:
        return ""
    if len(value) <= 7:
        return "*" * len(value)
    return f"{value[:3]}{'*' * (len(value) - 7)}{value[-4:]}"


def mask_id_card(value: str) -> str:
    """1101**********1234: the region's first four characters and the last four."""
    if not value:
        return ""
    if len(value) <= 8:
        return "*" * len(value)
    return f"{value[:4]}{'*' * (len(value) - 8)}{value[-4:]}"


def mask_bank_account(value: str) -> str:
    """6222 **** **** 1234: the issuer's first four digits and the last four."""
    if not value:
        return ""
    if len(value) <= 8:
        return "*" * len(value)
    return f"{value[:4]} **** **** {value[-4:]}"
