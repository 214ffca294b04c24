"""Helpers of the two-factor tests: enrol a user through the services, and compute codes as the app does."""

from eoms.accounts import services, totp
from eoms.accounts.models import TotpDevice
from eoms.core import crypto

PASSWORD = "pass-word-123"  # eoms.testing.factories.UserFactory


def secret_of(user) -> bytes:
    device = TotpDevice.objects.get(user=user, confirmed_at__isnull=False)
    return totp.from_b32(crypto.open_cell(device, "secret"))


def code(secret: bytes, steps_from_now: int = 0) -> str:
    """The code the phone shows now (or that many 30-second steps away)."""
    return totp.code_at(secret, totp.time_step() + steps_from_now)


def enrol(user) -> tuple[bytes, list[str]]:
    """Set up an app for `user` as the pages do; the confirming code is the previous step's, so the
    current step's code is still unused. Returns the secret and the recovery codes."""
    device, b32 = services.start_totp_enrolment(actor=user)
    secret = totp.from_b32(b32)
    _, codes = services.confirm_totp_device(actor=user, device_id=device.id, code=code(secret, -1))
    return secret, codes
