"""The TOTP arithmetic (eoms.accounts.totp) against RFC 6238's own test vectors and an independent
client, Debian's oathtool; recovery codes; the QR code."""

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from eoms.accounts import totp

RFC_SECRET = b"12345678901234567890"  # RFC 6238 appendix B, the SHA1 key

# RFC 6238 appendix B, mode SHA1: (Unix time, 8-digit TOTP)
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.asvs("6.5.5")
@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_rfc_6238_vectors_in_the_eight_digit_form(unix_time, expected):
    """ASVS 6.5.5: TOTP with a 30-second lifetime, as RFC 6238 defines it."""
    assert totp.code_at(RFC_SECRET, totp.time_step(unix_time), digits=8) == expected


@pytest.mark.asvs("6.5.5")
@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_rfc_6238_vectors_truncated_to_six_digits_verify(unix_time, expected):
    """The 6-digit codes apps show are the same value modulo 10^6: each verifies at its time and not
    three steps (90 s) later."""
    six = expected[-6:]
    step = totp.time_step(unix_time)
    assert totp.code_at(RFC_SECRET, step) == six
    assert totp.matching_step(RFC_SECRET, six, at=unix_time) == step
    assert totp.matching_step(RFC_SECRET, six, at=unix_time + 90) is None


def test_a_code_of_the_neighbouring_step_is_accepted_and_nothing_further():
    at = 1234567890
    step = totp.time_step(at)
    for offset in (-1, 0, 1):
        assert totp.matching_step(RFC_SECRET, totp.code_at(RFC_SECRET, step + offset), at=at) == step + offset
    for offset in (-3, -2, 2, 3):
        assert totp.matching_step(RFC_SECRET, totp.code_at(RFC_SECRET, step + offset), at=at) is None


@pytest.mark.asvs("6.5.1")
def test_a_step_at_or_before_the_last_used_one_is_refused():
    at = 1234567890
    step = totp.time_step(at)
    code = totp.code_at(RFC_SECRET, step)
    assert totp.matching_step(RFC_SECRET, code, at=at, after=step - 1) == step
    assert totp.matching_step(RFC_SECRET, code, at=at, after=step) is None
    assert totp.matching_step(RFC_SECRET, totp.code_at(RFC_SECRET, step - 1), at=at, after=step) is None


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", " 12 34", "１２３４５６"])
def test_malformed_codes_never_match(bad):
    assert totp.matching_step(RFC_SECRET, bad, at=59) is None


# ------------------------------------------------------------------------------------------ oathtool

OATHTOOL = shutil.which("oathtool")


def _oathtool(*args: str) -> str:
    if OATHTOOL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("oathtool is missing: .ci/run installs Debian's oathtool; under CI this test must run")
        pytest.skip("Debian's oathtool is not installed (apt-get install oathtool, or `make test` as root)")
    result = subprocess.run([OATHTOOL, *args], capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.strip()


@pytest.mark.asvs("6.5.5")
def test_codes_of_oathtool_verify_now():
    """An independent TOTP client (Debian's oathtool) and ours agree on a fresh random secret."""
    secret = totp.new_secret()
    code = _oathtool("--totp", "-b", totp.b32(secret))
    assert re.fullmatch(r"\d{6}", code)
    assert totp.matching_step(secret, code) is not None


@pytest.mark.asvs("6.5.5")
@pytest.mark.parametrize("unix_time", [59, 1111111109, 1234567890, 2000000000])
def test_codes_of_oathtool_at_fixed_times_are_ours(unix_time):
    secret = totp.new_secret()
    when = datetime.fromtimestamp(unix_time, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    code = _oathtool("--totp", "-b", "--now", when, totp.b32(secret))
    assert code == totp.code_at(secret, totp.time_step(unix_time))
    assert totp.matching_step(secret, code, at=unix_time) == totp.time_step(unix_time)


def test_oathtool_reads_the_rfc_key_as_we_do():
    """The RFC's ASCII key in base32 gives the RFC's code at T=59 in oathtool too (8 digits)."""
    assert _oathtool("--totp", "-b", "-d", "8", "--now", "1970-01-01 00:00:59 UTC", totp.b32(RFC_SECRET)) == (
        "94287082"
    )


# ------------------------------------------------------------------------------------------ the rest


@pytest.mark.asvs("6.5.3")
def test_secrets_and_recovery_codes_are_random_and_long_enough():
    """ASVS 6.5.3 (CSPRNG) and 6.5.2: recovery codes carry 120 bits, so SHA-256 may store them."""
    secrets_ = {totp.new_secret() for _ in range(50)}
    assert len(secrets_) == 50 and all(len(s) == 20 for s in secrets_)
    codes = totp.new_recovery_codes()
    assert len(codes) == 10 == len(set(codes))
    for code in codes:
        assert re.fullmatch(r"([a-z2-7]{4}-){5}[a-z2-7]{4}", code)
    assert totp.recovery_code_digest(codes[0].upper().replace("-", " ")) == totp.recovery_code_digest(codes[0])


def test_the_qr_code_is_inline_svg_without_script_or_style_and_carries_the_key():
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, account="王工", issuer="EOMS")
    assert uri.startswith("otpauth://totp/EOMS%3A%E7%8E%8B%E5%B7%A5?secret=") or uri.startswith(
        "otpauth://totp/EOMS:%E7%8E%8B%E5%B7%A5?secret="
    )
    assert f"secret={totp.b32(secret)}&issuer=EOMS&algorithm=SHA1&digits=6&period=30" in uri
    svg = totp.qr_svg(uri)
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
    for forbidden in ("<script", "<style", " on", "javascript:", "style="):
        assert forbidden not in svg.lower()
