"""Settings of notifications read from the environment here (a Django setting of the same name
without the EOMS_ prefix, e.g. NOTIFY_DIGEST_HOUR in the settings module or a test, wins)."""

import os

from django.conf import settings

__all__ = ["deadline_near_hours", "digest_hour"]


def _value(name: str, default: str) -> str:
    configured = getattr(settings, name, None)
    if configured is not None:
        return str(configured)
    return os.environ.get(f"EOMS_{name}", default)


def deadline_near_hours() -> float:
    """EOMS_NOTIFY_DEADLINE_NEAR_HOURS: how long before an order's stage deadline its stage owner
    and project managers are reminded (default 24)."""
    return float(_value("NOTIFY_DEADLINE_NEAR_HOURS", "24"))


def digest_hour() -> int:
    """EOMS_NOTIFY_DIGEST_HOUR: the hour (0–23, company time zone) the daily digest emails go out
    (default 8)."""
    hour = int(_value("NOTIFY_DIGEST_HOUR", "8"))
    if not 0 <= hour <= 23:
        raise ValueError("EOMS_NOTIFY_DIGEST_HOUR must be an hour from 0 to 23")
    return hour
