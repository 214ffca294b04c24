"""Liveness and readiness probes, as JSON for orchestrators and operators.

/healthz answers while the process can run a view: no database, no cache, no broker, so a slow
database never gets a healthy pod restarted. /readyz checks what a request needs: the database
(down → 503, the pod leaves the load balancer), the cache and the broker (failures are "degraded":
the cache only speeds things up and the outbox holds events while the broker is away, so the pod
keeps serving), and reports the outbox backlog. The broker check opens a real AMQP connection, so a
wrong password or virtual host shows as well as a broker that is down. Neither needs authentication, so neither says
anything secret: no hosts, no URLs, no exception messages, only the class of a failure.
"""

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Count, Min
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .models import OutboxMessage

__all__ = ["OK", "DEGRADED", "DOWN", "Check", "check_database", "check_cache", "check_broker", "outbox_backlog"]
__all__ += ["readiness", "healthz", "readyz"]

OK, DEGRADED, DOWN = "ok", "degraded", "down"
BROKER_TIMEOUT = 1.0


@dataclass
class Check:
    status: str
    latency_ms: float
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"status": self.status, "latency_ms": self.latency_ms, **self.extra}


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def check_database(alias: str = DEFAULT_DB_ALIAS) -> Check:
    start = time.perf_counter()
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            row = cursor.fetchone()
    except DatabaseError as exc:
        return Check(DOWN, _elapsed_ms(start), {"error": type(exc).__name__})
    if row is None or row[0] != 1:
        return Check(DOWN, _elapsed_ms(start), {"error": "unexpected result"})
    return Check(OK, _elapsed_ms(start))


def check_cache() -> Check:
    """Round-trip a unique value through the default cache (Redis when REDIS_URL is set)."""
    key = f"eoms:readyz:{uuid.uuid4().hex}"
    value = uuid.uuid4().hex
    start = time.perf_counter()
    try:
        cache.set(key, value, timeout=10)
        got = cache.get(key)
        cache.delete(key)
    except Exception as exc:  # any backend's connection error: redis, memcached, database, file
        return Check(DEGRADED, _elapsed_ms(start), {"error": type(exc).__name__})
    if got != value:
        return Check(DEGRADED, _elapsed_ms(start), {"error": "value not returned"})
    return Check(OK, _elapsed_ms(start))


def check_broker() -> Check:
    """Without BROKER_URL the relay delivers in-process: nothing to reach. With it, an AMQP connection
    opened (credentials and virtual host accepted) and closed within one second; anything less is
    "degraded": events wait in the outbox until the broker is back."""
    url = settings.BROKER_URL
    if not url:
        return Check(OK, 0.0, {"mode": "embedded"})
    start = time.perf_counter()
    try:
        parts = urlsplit(url)
        if not parts.hostname:
            return Check(DEGRADED, _elapsed_ms(start), {"mode": "broker", "error": "BROKER_URL has no host or port"})
        from .broker import ping

        ping(url, timeout=BROKER_TIMEOUT)
    except Exception as exc:  # socket, AMQP and kombu errors alike; only the class is told
        return Check(DEGRADED, _elapsed_ms(start), {"mode": "broker", "error": type(exc).__name__})
    return Check(OK, _elapsed_ms(start), {"mode": "broker"})


def outbox_backlog(now: datetime | None = None) -> dict:
    """Unsent outbox messages and the age of the oldest in seconds (None when there are none)."""
    row = OutboxMessage.objects.filter(sent_at__isnull=True).aggregate(n=Count("id"), oldest=Min("created_at"))
    oldest = row["oldest"]
    age = None
    if oldest is not None:
        age = round(max(0.0, ((now or timezone.now()) - oldest).total_seconds()), 3)
    return {"backlog": row["n"], "oldest_age_seconds": age}


def readiness() -> tuple[str, dict]:
    """The overall status and the body of /readyz."""
    checks = {"database": check_database(), "cache": check_cache(), "broker": check_broker()}
    statuses = {c.status for c in checks.values()}
    overall = DOWN if checks["database"].status == DOWN else (OK if statuses == {OK} else DEGRADED)
    outbox = None
    if checks["database"].status == OK:
        try:
            outbox = outbox_backlog()
        except DatabaseError:
            outbox = None
    body = {"status": overall, "checks": {name: c.as_dict() for name, c in checks.items()}, "outbox": outbox}
    return overall, body


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": OK})


@never_cache
@require_GET
def readyz(request):
    overall, body = readiness()
    return JsonResponse(body, status=503 if overall == DOWN else 200)
