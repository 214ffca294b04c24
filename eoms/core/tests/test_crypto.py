"""Field encryption primitives (eoms.core.crypto): AES-256-GCM envelopes bound to their cell, the
keyring, blind indexes and masking. ASVS ids are those of OWASP ASVS 5.0."""

import base64
import logging

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.test import override_settings

from eoms.core import crypto

K1 = base64.b64encode(b"\x01" * 32).decode()
K2 = base64.b64encode(b"\x02" * 32).decode()
INDEX = base64.b64encode(b"\x03" * 32).decode()
RING = crypto.parse_keyring(f"k2:{K2},k1:{K1}")
CELL = {"table": "masterdata_customer", "column": "id_card_number", "row_id": "0190-row-a"}


@pytest.mark.asvs("11.3.2")
def test_round_trip_and_envelope_format():
    # ASVS V11.3.2 (an approved authenticated mode: AES-256-GCM)
    envelope = crypto.encrypt("11010519491231002X", ring=RING, **CELL)
    version, key_id, nonce, sealed = envelope.split(":")
    assert (version, key_id) == ("v1", "k2")
    assert len(base64.b64decode(nonce)) == 12
    assert len(base64.b64decode(sealed)) == len("11010519491231002X") + 16  # ciphertext + 128-bit tag
    assert "11010519491231002X" not in envelope
    assert crypto.decrypt(envelope, ring=RING, **CELL) == "11010519491231002X"
    # Independently: the AAD is "<table>|<column>|<row id>" and the key is k2.
    assert (
        AESGCM(b"\x02" * 32).decrypt(
            base64.b64decode(nonce), base64.b64decode(sealed), b"masterdata_customer|id_card_number|0190-row-a"
        )
        == b"11010519491231002X"
    )


@pytest.mark.asvs("11.3.4")
def test_every_value_gets_its_own_nonce():
    # ASVS V11.3.4 (a nonce is never used twice with one key)
    envelopes = [crypto.encrypt("13800000000", ring=RING, **CELL) for _ in range(200)]
    nonces = {e.split(":")[2] for e in envelopes}
    assert len(nonces) == 200
    assert len(set(envelopes)) == 200


@pytest.mark.asvs("11.3.3")
@pytest.mark.parametrize("position", [0, 5, -1])
def test_a_flipped_byte_fails_loudly(position):
    # ASVS V11.3.3 (authenticated encryption: modification is detected)
    envelope = crypto.encrypt("6222021234567891234", ring=RING, **CELL)
    prefix, sealed_b64 = envelope.rsplit(":", 1)
    sealed = bytearray(base64.b64decode(sealed_b64))
    sealed[position] ^= 0x01
    tampered = f"{prefix}:{base64.b64encode(bytes(sealed)).decode()}"
    with pytest.raises(crypto.TamperedValue, match="does not authenticate"):
        crypto.decrypt(tampered, ring=RING, **CELL)


@pytest.mark.asvs("11.3.3")
def test_a_flipped_nonce_fails_loudly():
    # ASVS V11.3.3
    envelope = crypto.encrypt("6222021234567891234", ring=RING, **CELL)
    version, key_id, nonce_b64, sealed = envelope.split(":")
    nonce = bytearray(base64.b64decode(nonce_b64))
    nonce[0] ^= 0x80
    with pytest.raises(crypto.TamperedValue):
        crypto.decrypt(f"{version}:{key_id}:{base64.b64encode(bytes(nonce)).decode()}:{sealed}", ring=RING, **CELL)


@pytest.mark.asvs("11.3.3")
@pytest.mark.parametrize(
    "elsewhere",
    [
        {**CELL, "row_id": "0190-row-b"},
        {**CELL, "column": "bank_account"},
        {**CELL, "table": "masterdata_supplier"},
    ],
)
def test_a_value_moved_to_another_row_column_or_table_fails(elsewhere):
    # ASVS V11.3.3 (associated data binds the ciphertext to its cell)
    envelope = crypto.encrypt("11010519491231002X", ring=RING, **CELL)
    with pytest.raises(crypto.TamperedValue, match="belongs to another row or column"):
        crypto.decrypt(envelope, ring=RING, **elsewhere)


@pytest.mark.asvs("11.2.5")
@pytest.mark.parametrize("garbage", ["", "plain text", "v2:k2:AAAA:AAAA", "v1:k2:not base64!:AAAA", "v1:k2:AAAA:AAAA"])
def test_malformed_envelopes_are_refused(garbage):
    # ASVS V11.2.5 (cryptographic modules fail securely: an error, never a guess)
    with pytest.raises(crypto.TamperedValue):
        crypto.decrypt(garbage, ring=RING, **CELL)


@pytest.mark.asvs("11.2.2")
def test_unknown_key_id_is_named():
    # ASVS V11.2.2 (crypto agility: keys are identified, so old ones can be retired)
    envelope = crypto.encrypt("13800000000", ring=crypto.parse_keyring(f"k9:{K1}"), **CELL)
    with pytest.raises(crypto.UnknownKey, match="key id 'k9', which is not in EOMS_FIELD_KEYS"):
        crypto.decrypt(envelope, ring=RING, **CELL)


def test_older_keys_still_open_and_the_first_seals():
    old = crypto.encrypt("13800000000", ring=crypto.parse_keyring(f"k1:{K1}"), **CELL)
    assert crypto.key_id_of(old) == "k1"
    assert crypto.decrypt(old, ring=RING, **CELL) == "13800000000"
    assert crypto.key_id_of(crypto.encrypt("13800000000", ring=RING, **CELL)) == "k2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "EOMS_FIELD_KEYS is empty"),
        ("k1", "entries are <key id>:<base64 key>"),
        ("k 1:" + K1, "entries are <key id>:<base64 key>"),
        (f"k1:{K1},k1:{K2}", "names key id 'k1' twice"),
        ("k1:" + base64.b64encode(b"x" * 16).decode(), "has 16 bytes; AES-256 needs 32"),
        ("k1:***", "is not valid base64"),
    ],
)
def test_malformed_keyrings_are_refused_without_echoing_keys(text, message):
    with pytest.raises(crypto.CryptoError, match=message) as exc:
        crypto.parse_keyring(text)
    assert K1 not in str(exc.value) and K2 not in str(exc.value)


@override_settings(FIELD_KEYS=f"k1:{K1}", BLIND_INDEX_KEY=INDEX)
def test_blind_index_is_keyed_and_separate_per_column():
    # No ASVS 5.0 requirement names blind indexes; this is docs/decisions/0009's keyed, per-column HMAC.
    index = crypto.blind_index("13800000000", table="t", column="phone")
    assert len(index) == 64
    assert index == crypto.blind_index("13800000000", table="t", column="phone")
    assert index != crypto.blind_index("13800000000", table="t", column="contact_phone")
    assert index != crypto.blind_index("13800000001", table="t", column="phone")
    assert crypto.blind_index("", table="t", column="phone") == ""
    with override_settings(BLIND_INDEX_KEY=base64.b64encode(b"\x04" * 32).decode()):
        assert crypto.blind_index("13800000000", table="t", column="phone") != index


def test_blind_index_key_must_have_32_bytes():
    with pytest.raises(crypto.CryptoError, match="has 16 bytes; give at least 32"):
        crypto.parse_blind_index_key(base64.b64encode(b"x" * 16).decode())


def test_development_keys_are_generated_once_in_the_data_dir(tmp_path, caplog):
    with override_settings(FIELD_KEYS="", BLIND_INDEX_KEY="", DATA_DIR=tmp_path):
        with caplog.at_level(logging.WARNING, logger="eoms.crypto"):
            ring = crypto.keyring()
            key = crypto.blind_index_key()
        assert ring.current_id == "dev1" and len(ring.keys["dev1"]) == 32 and len(key) == 32
        assert "EOMS_FIELD_KEYS and EOMS_BLIND_INDEX_KEY are not set" in caplog.text
        assert (tmp_path / "field_keys").stat().st_mode & 0o777 == 0o600
        caplog.clear()
        assert crypto.keyring() == ring and crypto.blind_index_key() == key
        assert caplog.text == ""


@pytest.mark.asvs("14.2.6")
def test_masks():
    # ASVS V14.2.6 (only the part of a sensitive value the reader needs is shown)
    assert crypto.mask_id_card("110105194912311234") == "1101**********1234"
    assert crypto.mask_bank_account("6222021234567891234") == "6222 **** **** 1234"
    assert crypto.mask_bank_account("622202123456") == "6222 **** **** 3456"
    assert crypto.mask_phone("13812341234") == "138****1234"
    assert crypto.mask_phone("") == crypto.mask_id_card("") == crypto.mask_bank_account("") == ""
    assert crypto.mask_phone("1234567") == "*******"
