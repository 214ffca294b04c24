"""Time-based one-time passwords (RFC 6238) and recovery codes: the arithmetic, no storage.

The HOTP/TOTP computation is django-otp's (`django_otp.oath.hotp`, HMAC-SHA1, the algorithm every
authenticator app speaks); what we add is the time-step window, a constant-time comparison, the
otpauth:// URI with its QR code (segno, SVG) and the recovery codes. Which step a code matched is
returned, so the caller can refuse that step and every earlier one afterwards (a code works once).
See docs/decisions/0014-two-factor-authentication.md.
"""

import base64
import hashlib
import hmac
import re
import secrets
import time
from urllib.parse import quote, urlencode

from django_otp.oath import hotp

__all__ = [
    "DIGITS",
    "STEP_SECONDS",
    "WINDOW",
    "new_secret",
    "b32",
    "from_b32",
    "time_step",
    "code_at",
    "matching_step",
    "provisioning_uri",
    "qr_svg",
    "new_recovery_codes",
    "normalise_recovery_code",
    "recovery_code_digest",
    "looks_like_totp",
]

DIGITS = 6
STEP_SECONDS = 30
# Steps either side of now a code is accepted from: the phone's clock may be a little off, and a code
# typed at the end of its 30 seconds arrives in the next step.
WINDOW = 1
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation for HMAC-SHA1
RECOVERY_CODES = 10
# 24 base32 characters: 120 bits, above ASVS 6.5.2's 112 bits, so a plain SHA-256 may store them.
RECOVERY_CODE_CHARS = 24
_B32 = "abcdefghijklmnopqrstuvwxyz234567"


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def b32(secret: bytes) -> str:
    """The secret as authenticator apps take it for manual entry (base32, no padding)."""
    return base64.b32encode(secret).decode().rstrip("=")


def from_b32(text: str) -> bytes:
    text = re.sub(r"\s", "", text).upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def time_step(at: float | None = None) -> int:
    return int(time.time() if at is None else at) // STEP_SECONDS


def code_at(secret: bytes, step: int, digits: int = DIGITS) -> str:
    """The code of one time step, zero-padded (RFC 6238 with T0 = 0 and X = 30 s)."""
    return str(hotp(secret, step, digits=digits)).zfill(digits)


def looks_like_totp(code: str) -> bool:
    return bool(re.fullmatch(rf"[0-9]{{{DIGITS}}}", code))


def matching_step(secret: bytes, code: str, *, at: float | None = None, after: int = -1) -> int | None:
    """The time step within WINDOW of `at` whose code is `code`, and which is later than `after` (the
    last step used), or None. Every candidate is compared, in constant time, so the answer's timing
    does not say which step matched."""
    code = (code or "").strip()
    if not looks_like_totp(code):
        return None
    now = time_step(at)
    found = None
    for step in range(now - WINDOW, now + WINDOW + 1):
        if hmac.compare_digest(code_at(secret, step), code) and step > after and found is None:
            found = step
    return found


def provisioning_uri(secret: bytes, *, account: str, issuer: str) -> str:
    """The otpauth:// URI authenticator apps read from the QR code (Google Authenticator's key format)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    params = urlencode(
        {"secret": b32(secret), "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP_SECONDS}
    )
    return f"otpauth://totp/{label}?{params}"


def qr_svg(uri: str) -> str:
    """The QR code as an <svg> element: paths only, no script and no style element, so it is shown
    inline under the Content-Security-Policy as it is. Scales with its container (viewBox, no size)."""
    import segno  # on use: only the page that sets up an authenticator app draws one (~9 MB a worker)

    return segno.make(uri, error="m").svg_inline(scale=1, omitsize=True, dark="#000", light="#fff", border=2)


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Codes as shown to the user: 24 random base32 characters in groups of four."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_B32) for _ in range(RECOVERY_CODE_CHARS))
        codes.append("-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_CHARS, 4)))
    return codes


def normalise_recovery_code(text: str) -> str:
    return re.sub(r"[\s-]", "", text or "").lower()


def recovery_code_digest(text: str) -> str:
    """SHA-256 of the normalised code; what is stored (the codes carry 120 bits, ASVS 6.5.2)."""
    return hashlib.sha256(normalise_recovery_code(text).encode()).hexdigest()
