"""Prometheus metrics at /metrics, in a registry of our own.

Request metrics come from MetricsMiddleware (first in MIDDLEWARE, so the duration covers every other
middleware), labelled by the URL pattern a request resolved to, never the raw path, so an order id
does not become a time series. Counts that live in the database (outbox, orders by state) and the
readiness of each dependency are read when Prometheus scrapes, by StateCollector: always current,
no bookkeeping on the write path. Core knows no business context, so orders are counted through the
app registry by name.

/metrics is not there (404) until EOMS_METRICS_TOKEN is set, and then answers only to
`Authorization: Bearer <token>` (401 otherwise).
"""

import hmac
import shutil
import time

from django.apps import apps
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from . import health

__all__ = ["REGISTRY", "MetricsMiddleware", "StateCollector", "route_of", "metrics_view"]

disable_created_metrics()  # no *_created series: they double the series count and nothing here uses them

REGISTRY = CollectorRegistry()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUERY_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144)

HTTP_REQUESTS = Counter(
    "eoms_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "eoms_http_request_duration_seconds",
    "Time from the first middleware receiving a request to the response, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
DB_QUERIES = Histogram(
    "eoms_db_queries_per_request",
    "SQL statements run on the default database while answering one request.",
    buckets=QUERY_BUCKETS,
    registry=REGISTRY,
)
DB_TIME = Histogram(
    "eoms_db_query_seconds_per_request",
    "Time spent in SQL statements on the default database while answering one request.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
LOGIN_FAILURES = Counter(
    "eoms_login_failures",
    "Failed sign-ins (django.contrib.auth user_login_failed).",
    registry=REGISTRY,
)

UNMATCHED = "unmatched"
STATIC = "static"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_of(request) -> str:
    """The URL pattern the request resolved to ("api/v1/orders/<uuid:order_id>"), "static" for files
    served before URL resolution, "unmatched" for anything else (404s of unknown paths)."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return match.route
    static_url = settings.STATIC_URL or ""
    if static_url and request.path.startswith("/" + static_url.lstrip("/")):
        return STATIC
    return UNMATCHED


class _QueryTally:
    def __init__(self):
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - start


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tally = _QueryTally()
        start = time.perf_counter()
        with connections[DEFAULT_DB_ALIAS].execute_wrapper(tally):
            response = self.get_response(request)
        elapsed = time.perf_counter() - start
        method = request.method if request.method in HTTP_METHODS else "other"
        route = route_of(request)
        HTTP_REQUESTS.labels(method=method, route=route, status=str(response.status_code)).inc()
        HTTP_DURATION.labels(method=method, route=route).observe(elapsed)
        DB_QUERIES.observe(tally.count)
        DB_TIME.observe(tally.seconds)
        return response


def _on_login_failed(sender, credentials, request=None, **kwargs):
    LOGIN_FAILURES.inc()


user_login_failed.connect(_on_login_failed, dispatch_uid="eoms.core.metrics.login_failed")


class StateCollector:
    """Gauges read at scrape time. A database that does not answer leaves out the gauges that need
    it; eoms_ready{component="database"} 0 says why."""

    def describe(self):
        return []  # nothing is queried when the collector is registered

    def collect(self):
        overall, body = health.readiness()
        ready = GaugeMetricFamily(
            "eoms_ready", "1 when a dependency checked by /readyz is ok, 0 when degraded or down.", labels=["component"]
        )
        latency = GaugeMetricFamily(
            "eoms_ready_check_latency_seconds", "How long the /readyz check of a dependency took.", labels=["component"]
        )
        for component, check in body["checks"].items():
            ready.add_metric([component], 1.0 if check["status"] == health.OK else 0.0)
            latency.add_metric([component], check["latency_ms"] / 1000)
        yield ready
        yield latency

        outbox = body["outbox"]
        if outbox is not None:
            yield GaugeMetricFamily(
                "eoms_outbox_backlog", "Outbox messages not yet delivered.", value=outbox["backlog"]
            )
            yield GaugeMetricFamily(
                "eoms_outbox_oldest_age_seconds",
                "Age of the oldest undelivered outbox message (0 when none is waiting).",
                value=outbox["oldest_age_seconds"] or 0.0,
            )
            orders = _orders_by_state()
            if orders is not None:
                yield orders
            yield from _approval_tasks()

        usage = shutil.disk_usage(settings.DATA_DIR)
        yield GaugeMetricFamily(
            "eoms_data_dir_free_bytes", "Free bytes on the data directory's disk.", value=usage.free
        )
        yield GaugeMetricFamily(
            "eoms_data_dir_size_bytes", "Size in bytes of the data directory's disk.", value=usage.total
        )


def _orders_by_state():
    if not apps.is_installed("eoms.orders"):
        return None
    order = apps.get_model("orders", "Order")
    states = [value for value, _label in order._meta.get_field("state").choices or []]
    try:
        counts = {row["state"]: row["n"] for row in order.objects.order_by().values("state").annotate(n=Count("pk"))}
    except DatabaseError:
        return None
    family = GaugeMetricFamily("eoms_orders", "Orders by lifecycle state.", labels=["state"])
    for state in dict.fromkeys([*states, *sorted(counts)]):
        family.add_metric([state], counts.get(state, 0))
    return family


def _approval_tasks():
    """Pending approval tasks of running approvals, and those past their node's SLA."""
    if not apps.is_installed("eoms.approvals"):
        return
    task = apps.get_model("approvals", "ApprovalTask")
    pending = task.objects.filter(state="pending", instance__state="running")
    try:
        counts = (pending.count(), pending.filter(step__due_at__lt=timezone.now()).count())
    except DatabaseError:
        return
    yield GaugeMetricFamily("eoms_approval_tasks_pending", "Approval tasks waiting for a decision.", value=counts[0])
    yield GaugeMetricFamily(
        "eoms_approval_tasks_overdue", "Pending approval tasks past their node's SLA.", value=counts[1]
    )


REGISTRY.register(StateCollector())


@never_cache
@require_GET
def metrics_view(request):
    token = settings.EOMS_METRICS_TOKEN
    if not token:
        raise Http404
    header = request.headers.get("Authorization", "")
    scheme, _sep, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
