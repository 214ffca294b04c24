"""Lockout and throttling of failed sign-ins, per account and per client address.

Counters live in the Django cache (Redis when REDIS_URL is set, so every web process shares them;
the process's local memory otherwise), counted with cache.add + cache.incr, which are atomic on both.

An attempt takes its slot *before* the password is checked: the account's and the address's counters
are incremented first, and an attempt whose number is beyond the limit is refused without evaluating
the password. So however many attempts arrive at once, no more than the limit are evaluated in a
window. A wrong password keeps its slot; a right one gives the address's slot back and clears the
account's counter. The attempt that fills the account's counter locks the account for
LOGIN_LOCKOUT_SECONDS; the one that fills the address's counter blocks the address as long.

Accounts are keyed by a hash of the normalised username whether or not such a user exists, so a
lockout says nothing about which accounts exist.

When the shared cache cannot be reached (Redis down), the counters fall back to this process's memory
for that call, with a warning: sign-in keeps working and keeps being throttled per process, rather
than failing with the cache (issue 4: "Redis down … requests do not fail").
"""

import hashlib
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.core.cache.backends.locmem import LocMemCache
from prometheus_client import Counter

from eoms.core.metrics import REGISTRY

# Failures are counted by eoms_login_failures_total (every failed or refused attempt sends
# user_login_failed); this counts the lockouts and blocks they start.
LOCKOUTS = Counter(
    "eoms_login_lockouts",
    "Sign-in lockouts started, by scope: account (too many failures for one username) or ip (from one address).",
    ["scope"],
    registry=REGISTRY,
)

__all__ = ["Attempt", "begin", "failed", "succeeded", "account_key", "ip_key", "LOCKOUTS"]

log = logging.getLogger("eoms.accounts.throttling")
_fallback = LocMemCache("eoms-login-throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})


class _Counters:
    """The cache operations the counters use, each on the shared cache, or on this process's memory
    when the shared cache fails (ValueError is the caches' own answer for a missing key: not a failure)."""

    def __getattr__(self, name):
        def call(*args, **kwargs):
            try:
                return getattr(shared_cache, name)(*args, **kwargs)
            except ValueError:
                raise
            except Exception as exc:  # noqa: BLE001 (Redis down: throttle in this process instead)
                log.warning(
                    "sign-in throttling: the shared cache failed (%s); counting in this process", type(exc).__name__
                )
                return getattr(_fallback, name)(*args, **kwargs)

        return call


cache = _Counters()


@dataclass(frozen=True)
class Attempt:
    username: str
    ip: str | None
    account_count: int
    ip_count: int
    refused: str = ""  # "" (evaluate the password), "locked" (the account) or "blocked" (the address)
    # The lock or block this refusal set itself (while the attempt that filled the counter was still being
    # checked), with the count: audited like one that failed() starts.
    started: dict = field(default_factory=dict)

    @property
    def retry_after(self) -> int:
        return settings.LOGIN_LOCKOUT_SECONDS


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def account_key(username: str, kind: str = "count") -> str:
    return f"{settings.LOGIN_THROTTLE_KEY_PREFIX}:account:{kind}:{_digest(username.strip().casefold())}"


def ip_key(ip: str | None, kind: str = "count") -> str:
    return f"{settings.LOGIN_THROTTLE_KEY_PREFIX}:ip:{kind}:{_digest(ip or '-')}"


def _increment(key: str) -> int:
    """Atomic: the first add wins the race to create the counter (with the window as its lifetime)."""
    if cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS):
        return 1
    try:
        value = cache.incr(key)
    except ValueError:  # expired between add and incr
        return _increment(key)
    if value == 1:  # Redis's INCR re-created a key that expired after the check: it needs its lifetime back
        cache.touch(key, settings.LOGIN_FAILURE_WINDOW_SECONDS)
    return value


def begin(*, username: str, ip: str | None) -> Attempt:
    """Take a slot for one sign-in attempt, or say why it is refused without checking the password.
    Attempts on a locked account still count against the address they come from."""
    if cache.get(ip_key(ip, "block")):
        return Attempt(username, ip, 0, 0, refused="blocked")
    ip_count = _increment(ip_key(ip))
    if ip_count > settings.LOGIN_MAX_FAILURES_PER_IP:
        started = {"blocked": ip_count} if cache.add(ip_key(ip, "block"), 1, settings.LOGIN_LOCKOUT_SECONDS) else {}
        return Attempt(username, ip, 0, ip_count, refused="blocked", started=started)
    if cache.get(account_key(username, "lock")):
        return Attempt(username, ip, 0, ip_count, refused="locked")
    account_count = _increment(account_key(username))
    if account_count > settings.LOGIN_MAX_FAILURES_PER_ACCOUNT:
        lock = cache.add(account_key(username, "lock"), 1, settings.LOGIN_LOCKOUT_SECONDS)
        started = {"locked": account_count} if lock else {}
        return Attempt(username, ip, account_count, ip_count, refused="locked", started=started)
    return Attempt(username, ip, account_count, ip_count)


def failed(attempt: Attempt) -> dict[str, int]:
    """The password was wrong: the slot stays taken. Returns what this failure started, each with
    the failures counted: "locked" (the account's counter is full) and/or "blocked" (the address's);
    each is started once, by one attempt, however many fail at the same time."""
    started = {}
    if attempt.account_count >= settings.LOGIN_MAX_FAILURES_PER_ACCOUNT and cache.add(
        account_key(attempt.username, "lock"), 1, timeout=settings.LOGIN_LOCKOUT_SECONDS
    ):
        started["locked"] = attempt.account_count
    if attempt.ip_count >= settings.LOGIN_MAX_FAILURES_PER_IP and cache.add(
        ip_key(attempt.ip, "block"), 1, timeout=settings.LOGIN_LOCKOUT_SECONDS
    ):
        started["blocked"] = attempt.ip_count
    return started


def succeeded(attempt: Attempt, *, second_factor_pending: bool = False) -> None:
    """The password (or code) was right: the account's failures are forgotten and the address's slot given
    back. With `second_factor_pending` (a right password of an account with two-factor authentication,
    whose code is still to come) the account's slot is given back but its earlier failures are kept: the
    password and the code failures count together until the sign-in is complete, so a known password
    does not buy a fresh allowance of code guesses."""
    if second_factor_pending:
        _give_back(account_key(attempt.username))
    else:
        cache.delete(account_key(attempt.username))
    _give_back(ip_key(attempt.ip))


def _give_back(key: str) -> None:
    try:
        if cache.decr(key) < 0:  # the window ended meanwhile and DECR re-created the key
            cache.delete(key)
    except ValueError:  # the window ended meanwhile
        pass
