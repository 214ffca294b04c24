"""Rate limits on the JSON API: per address, per user, per client (the credential), and a stricter
bucket for expensive endpoints (exports, reports, simulations).

Each bucket is a fixed-window counter: the first request of a window creates the counter with the
window as its lifetime, each request adds one, and a request whose number is beyond the limit is
refused with 429 (problem+json, code `rate_limited`) and `Retry-After` saying when the window ends.

- ip: every request to /api/ and to the OAuth2 token, revocation and introspection endpoints from one
  client address (ApiRateLimitMiddleware, before authentication, so requests without valid credentials
  count too); the address is worked out as for sign-in
  throttling (eoms.core.middleware.client_ip: X-Forwarded-For only from EOMS_TRUSTED_PROXIES).
- user: every authenticated request of one user, whatever credential it comes with (ApiThrottle).
- client: every request made with one credential: `request.eoms_client_id`, set by the authentication
  that accepted it ("token:<uuid>" for a personal API token, "oauth:<client_id>" for an OAuth2 client);
  a page session is no client of its own and counts only as its user.
- expensive: endpoints declared with `throttle=EXPENSIVE` count here too, per client, else per user,
  else per address, under a much smaller limit.

With REDIS_URL the counters live in Redis, shared by every web process: one Lua script increments all
of a request's buckets and reads their remaining lifetimes in one round trip, atomically, so however
many requests race no more than the limit pass in a window. Without Redis, or when Redis fails (with a
warning; issue 4: requests do not fail because the cache does), each process counts in its own memory.

A refused request is counted in /metrics (eoms_api_rate_limited_total{bucket}) and logged; the first
refusal of a bucket in a window, and only that one, is written to the audit chain (auditing every 429
would let whoever floods the API flood the chain too).
"""

import functools
import hashlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import DatabaseError, transaction
from django.utils.translation import gettext
from ninja.throttling import BaseThrottle
from prometheus_client import Counter
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from . import audit
from .api import problem
from .metrics import REGISTRY

__all__ = ["ApiRateLimitMiddleware", "ApiThrottle", "DEFAULT", "EXPENSIVE", "RATE_LIMITED", "Hit", "hit"]
__all__ += ["rate_limited_response", "document_rate_limits"]

log = logging.getLogger("eoms.core.ratelimit")

RATE_LIMITED = Counter(
    "eoms_api_rate_limited",
    "API requests refused with 429 by a rate limit, by bucket: ip, user, client or expensive.",
    ["bucket"],
    registry=REGISTRY,
)

# The limit of each bucket, by the setting that holds it (EOMS_API_RATE_PER_*; 0 turns a bucket off).
LIMIT_SETTINGS = {
    "ip": "API_RATE_PER_IP",
    "user": "API_RATE_PER_USER",
    "client": "API_RATE_PER_CLIENT",
    "expensive": "API_RATE_EXPENSIVE",
}

# KEYS: the counters; ARGV[1]: the window in milliseconds. Returns count and remaining lifetime (ms) of
# each. A counter without a lifetime (just created, or re-created after it expired) is given the window.
_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  out[#out + 1] = n
  out[#out + 1] = ttl
end
return out
"""


@dataclass(frozen=True)
class Hit:
    """One bucket's count after this request, its limit and how long its window still runs."""

    bucket: str
    key: str
    count: int
    limit: int
    remaining_ms: int
    subject: str = ""  # what the bucket counts, for the audit entry: a user, client or address

    @property
    def refused(self) -> bool:
        return self.count > self.limit

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window ends (RFC 9110 delta-seconds), at least 1."""
        return max(1, math.ceil(self.remaining_ms / 1000))


class _LocalCounters:
    """Fixed windows in this process's memory: when there is no Redis, or it fails."""

    MAX_KEYS = 100_000

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}

    def incr(self, keys: list[str], window: float) -> list[tuple[int, int]]:
        now = time.time()
        out = []
        with self._lock:
            for key in keys:
                count, ends = self._counts.get(key, (0, 0.0))
                if ends <= now:
                    count, ends = 0, now + window
                count += 1
                self._counts[key] = (count, ends)
                out.append((count, int((ends - now) * 1000)))
            if len(self._counts) > self.MAX_KEYS:
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        return out


_local = _LocalCounters()
_warned_at = -60.0  # time.monotonic() of the last "Redis failed" warning


class _RedisCounters:
    """The script over one connection of this thread to the cache's Redis, kept for the rate limits.

    Every API request runs the script twice (the address before authentication, then the user and the
    client). Through a redis-py client each call took a connection from the pool and gave it back around
    retry and bookkeeping layers, which cost about three times the round trip itself; here the
    connection is this thread's own, the command is sent as EVALSHA (the script is loaded once, and
    again when Redis has forgotten it) and the reply read at once. The connection takes the settings of
    the cache's pool (address, database, password, timeouts) and is made again in a forked process, for
    another cache backend (settings changed), and after a failure."""

    def __init__(self):
        self._mine = threading.local()

    def _connection(self):
        """This thread's connection, or None when the cache is not Redis."""
        backend = caches["default"]
        if not isinstance(backend, RedisCache):
            return None
        mine = self._mine
        if getattr(mine, "backend", None) is not backend or mine.pid != os.getpid():
            self.drop()
            pool = backend._cache.get_client(write=True).connection_pool
            mine.connection = pool.connection_class(**pool.connection_kwargs)
            mine.backend, mine.pid = backend, os.getpid()
        return mine.connection

    def drop(self) -> None:
        connection = getattr(self._mine, "connection", None)
        if connection is not None:
            connection.disconnect()
        self._mine.__dict__.clear()

    def incr(self, keys: list[str], window_ms: int) -> list | None:
        """The script's answer, or None when the cache is not Redis. Raises what Redis raises; a
        connection Redis closed meanwhile (a restart) is made again once."""
        for attempt in (1, 2):
            connection = self._connection()
            if connection is None:
                return None
            try:
                return self._run(connection, keys, window_ms)
            except RedisConnectionError:
                self.drop()
                if attempt == 2:
                    raise
            except Exception:
                self.drop()  # in whatever state the failure left it: a new one next time
                raise
        return None

    @staticmethod
    def _run(connection, keys: list[str], window_ms: int) -> list:
        connection.send_command("EVALSHA", _SCRIPT_SHA, len(keys), *keys, window_ms)
        try:
            return connection.read_response()
        except NoScriptError:  # a restarted or flushed Redis: load the script, once
            connection.send_command("SCRIPT", "LOAD", _SCRIPT)
            connection.read_response()
            connection.send_command("EVALSHA", _SCRIPT_SHA, len(keys), *keys, window_ms)
            return connection.read_response()


_SCRIPT_SHA = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()  # Redis names scripts by their SHA-1
_redis = _RedisCounters()


def _incr(keys: list[str], window: int) -> list[tuple[int, int]]:
    try:
        values = _redis.incr(keys, window * 1000)
    except Exception as exc:  # noqa: BLE001 (Redis down: count in this process instead)
        global _warned_at
        if time.monotonic() - _warned_at >= 60:  # one warning a minute, not one per request
            _warned_at = time.monotonic()
            log.warning("API rate limits: Redis failed (%s); counting in this process", type(exc).__name__)
        return _local.incr(keys, window)
    if values is None:
        return _local.incr(keys, window)
    return [(int(values[i]), int(values[i + 1])) for i in range(0, len(values), 2)]


@functools.lru_cache(maxsize=4096)  # the same addresses, users and tokens again and again
def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def hit(buckets: list[tuple[str, str]]) -> list[Hit]:
    """Count one request in each (bucket, subject) whose limit is not 0; the hits, in order."""
    window = settings.API_RATE_WINDOW_SECONDS
    chosen = [(b, s, getattr(settings, LIMIT_SETTINGS[b])) for b, s in buckets]
    chosen = [(b, s, limit) for b, s, limit in chosen if limit > 0]
    if not chosen:
        return []
    keys = [f"{settings.API_RATE_KEY_PREFIX}:{b}:{_digest(s)}" for b, s, _ in chosen]
    counts = _incr(keys, window)
    return [
        Hit(bucket=b, key=key, count=count, limit=limit, remaining_ms=ms, subject=s)
        for (b, s, limit), key, (count, ms) in zip(chosen, keys, counts, strict=True)
    ]


def _refusal(hits: list[Hit], *, actor=None) -> Hit | None:
    """The refused hit with the longest wait (counted, logged, the first of its window audited), or None."""
    refused = [h for h in hits if h.refused]
    if not refused:
        return None
    for h in refused:
        RATE_LIMITED.labels(bucket=h.bucket).inc()
        log.info("API rate limit: %s bucket over %d (request %d)", h.bucket, h.limit, h.count)
        if h.count == h.limit + 1:  # exactly one request of a window sees this number
            log.warning("API rate limit reached: %s bucket, %d requests per %d s", h.bucket, h.limit, _window())
            try:
                record_rate_limit_reached(actor=actor, hit=h)
            except DatabaseError:
                log.exception("API rate limit: could not audit the %s bucket reaching its limit", h.bucket)
    return max(refused, key=lambda h: h.remaining_ms)


def _window() -> int:
    return settings.API_RATE_WINDOW_SECONDS


@transaction.atomic
def record_rate_limit_reached(*, actor, hit: Hit) -> None:
    """Audit that a bucket reached its limit (once a window): which bucket, whose, the limit. The
    address is the request's own, as on every entry; a user or client is named, an address only hashed
    in the object id (it is in the entry's ip already)."""
    audit.record(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action="api.rate_limited",
        object_type="core.rate_limit",
        object_id=f"{hit.bucket}:{hit.key.rsplit(':', 1)[-1]}",
        object_repr=hit.subject if hit.bucket in ("client", "user") else hit.bucket,
        changes={"bucket": hit.bucket, "limit": hit.limit, "window_seconds": _window()},
    )


def rate_limited_response(h: Hit):
    """429 problem+json with Retry-After."""
    response = problem(
        429,
        "rate_limited",
        gettext("Too many requests"),
        gettext("Rate limit of %(limit)d requests per %(window)d seconds reached; retry in %(seconds)d seconds.")
        % {"limit": h.limit, "window": _window(), "seconds": h.retry_after},
        bucket=h.bucket,
    )
    response["Retry-After"] = str(h.retry_after)
    return response


# The per-address bucket covers the JSON API and the OAuth2 endpoints machines call (not the browser's
# authorize page): guessing client secrets or tokens there counts like any API request.
IP_LIMITED_PATHS = ("/api/", "/o/token/", "/o/revoke_token/", "/o/introspect/")


class ApiRateLimitMiddleware:
    """The per-address bucket of the API, before any authentication (placed after RequestContextMiddleware,
    which works out the client address)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(IP_LIMITED_PATHS):
            refused = _refusal(hit([("ip", getattr(request, "client_ip", None) or "-")]))
            if refused is not None:
                return rate_limited_response(refused)
        return self.get_response(request)


class ApiThrottle(BaseThrottle):
    """The per-user and per-client buckets (and with expensive=True the expensive bucket), checked by
    Ninja after authentication. A refusal is left on the request for the API's Throttled handler."""

    def __init__(self, *, expensive: bool = False):
        self.expensive = expensive
        self._wait = threading.local()

    def allow_request(self, request) -> bool:
        user = getattr(request, "auth", None)
        user_id = str(user.pk) if getattr(user, "is_authenticated", False) else ""
        client = getattr(request, "eoms_client_id", None) or ""
        buckets = []
        if user_id:
            buckets.append(("user", user_id))
        if client:
            buckets.append(("client", client))
        if self.expensive:
            address = getattr(request, "client_ip", None)
            who = f"client:{client}" if client else f"user:{user_id}" if user_id else f"ip:{address}"
            buckets.append(("expensive", who))
        refused = _refusal(hit(buckets), actor=user)
        request.eoms_rate_limited = refused
        self._wait.seconds = refused.retry_after if refused else None
        return refused is None

    def wait(self):
        return getattr(self._wait, "seconds", None)


DEFAULT = ApiThrottle()
# For endpoints whose every call costs much more than a read (exports, reports, simulations):
# `@router.get(..., throttle=EXPENSIVE)`.
EXPENSIVE = ApiThrottle(expensive=True)


def document_rate_limits(schema: dict) -> dict:
    """Every operation of the API may answer 429 (the address bucket applies to all): say so in the
    OpenAPI document, with the problem body and the Retry-After header, so clients and schema-driven
    tests expect it."""
    response = {
        "description": "Too many requests: a rate limit is reached (code rate_limited; `bucket` says which).",
        "headers": {
            "Retry-After": {"description": "Seconds until the limit's window ends.", "schema": {"type": "integer"}}
        },
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemSchema"}}},
    }
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("429", response)
    return schema
