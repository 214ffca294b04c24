"""Prometheus metrics at /metrics, in a registry of our own.

Request metrics come from MetricsMiddleware (first in MIDDLEWARE, so the duration covers every other
middleware), labelled by the URL pattern a request resolved to, never the raw path, so an order id
does not become a time series. Counts that live in the database (outbox, orders by state, open dead
letters) and the readiness of each dependency are read when Prometheus scrapes, by StateCollector and
DeadLetterCollector: always current, no bookkeeping on the write path. Core knows no business
context, so orders are counted through the app registry by name.

Database connections are seen from both ends: this process's connections (how many it keeps open
between requests and the age of the oldest, which shows CONN_MAX_AGE reuse at work), sampled as each
request finishes, after Django has closed the connections past their age; and the server's count of
connections, read at scrape time (PostgreSQL: pg_stat_activity for EOMS's database by state;
MariaDB/MySQL: Threads_connected, running or idle; nothing on SQLite, which has no server).

Under `eoms serve` several gunicorn workers answer requests, each with its own counters: there
PROMETHEUS_MULTIPROC_DIR is set (by the command, before any worker starts) and prometheus_client
keeps every worker's values in files in it, which a scrape of any worker adds up. The gauges read at
scrape time are not per worker and are computed once, by the worker that answers.

The relay's and consumers' counters (MESSAGING_COUNTERS) count in the process that does the work:
`eoms relay` and `eoms worker` serve them on their own port (--metrics-port, eoms.core.process_metrics),
which Prometheus scrapes beside /metrics; under `eoms serve` they appear here without samples, and in
`eoms run` (embedded) the relay thread's counts appear here.

The same middleware writes the access log line of every request (eoms.core.logs): request id, user
id, method, route template, status, duration and statement count; never the path or query string.

/metrics is not there (404) until EOMS_METRICS_TOKEN is set, and then answers only to
`Authorization: Bearer <token>` (401 otherwise).
"""

import hmac
import os
import shutil
import threading
import time
import weakref

from django.apps import apps
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.signals import request_finished
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.signals import connection_created
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject, empty
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from . import health
from .logs import access_logger

__all__ = ["REGISTRY", "MULTIPROC_ENV", "MetricsMiddleware", "StateCollector", "route_of", "metrics_view"]
__all__ += ["sample_connections", "scrape_registry"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

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
DB_CONNECTIONS_OPEN = Gauge(
    "eoms_db_connections_open",
    "Database connections the web processes keep open between requests, by alias (summed over the "
    "workers of eoms serve; 0 with EOMS_DB_CONN_MAX_AGE=0, which closes them after every request). "
    "Sampled as each request finishes.",
    ["alias"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
DB_CONNECTION_AGE = Gauge(
    "eoms_db_connection_age_seconds",
    "Age of the oldest database connection kept open between requests, by alias (the oldest of any "
    "worker); it grows up to EOMS_DB_CONN_MAX_AGE while connections are reused. Sampled as each "
    "request finishes.",
    ["alias"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)

ACCESS_LOG = access_logger()

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
        status = response.status_code
        requests, duration = _request_series(method, route, status)
        requests.inc()
        duration.observe(elapsed)
        DB_QUERIES.observe(tally.count)
        DB_TIME.observe(tally.seconds)
        (ACCESS_LOG.error if status >= 500 else ACCESS_LOG.info)(
            "request",
            # RequestContextMiddleware (inside this one) has already left the request context.
            request_id=getattr(request, "request_id", None),
            user_id=_user_id(request),
            method=method,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 3),
            db_queries=tally.count,
            db_ms=round(tally.seconds * 1000, 3),
        )
        return response


# (method, route, status) -> the two series a request of them counts in. labels() checks and looks up
# its arguments under a lock on every call; the series of a label set never change, so each is looked up
# once. As many entries as the series themselves (routes are templates, never paths).
_SERIES: dict[tuple[str, str, int], tuple] = {}


def _request_series(method: str, route: str, status: int) -> tuple:
    series = _SERIES.get((method, route, status))
    if series is None:
        series = _SERIES[(method, route, status)] = (
            HTTP_REQUESTS.labels(method=method, route=route, status=str(status)),
            HTTP_DURATION.labels(method=method, route=route),
        )
    return series


def _user_id(request) -> str | None:
    """The id of the user the request was answered for; None when anonymous, and when nothing during
    the request looked at the user (static files, /healthz): it is not loaded only to be logged."""
    user = getattr(request, "user", None)
    if user is None or (isinstance(user, SimpleLazyObject) and user._wrapped is empty):
        return None
    return str(user.pk) if user.is_authenticated else None


# Every connection this process opened, with the time it was opened (connections are per thread; the
# threads of a gthread worker each have their own). Weak keys: a finished thread's wrapper goes away.
_OPENED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_OPENED_LOCK = threading.Lock()


def _on_connection_created(sender, connection, **kwargs):
    with _OPENED_LOCK:
        _OPENED[connection] = time.time()


def sample_connections(now: float | None = None) -> dict[str, tuple[int, float]]:
    """Set the connection gauges from the connections this process holds open now:
    {alias: (open connections, age in seconds of the oldest)}."""
    now = time.time() if now is None else now
    with _OPENED_LOCK:
        opened = list(_OPENED.items())
    sample = dict.fromkeys([*settings.DATABASES, *(wrapper.alias for wrapper, _at in opened)], (0, 0.0))
    for wrapper, opened_at in opened:
        if wrapper.connection is None:
            continue
        count, age = sample[wrapper.alias]
        sample[wrapper.alias] = (count + 1, max(age, now - opened_at))
    for alias, (count, age) in sample.items():
        open_gauge, age_gauge = _connection_series(alias)
        open_gauge.set(count)
        age_gauge.set(age)
    return sample


_CONNECTION_SERIES: dict[str, tuple] = {}


def _connection_series(alias: str) -> tuple:
    """The two gauges of a database alias, looked up once (sampled after every request)."""
    series = _CONNECTION_SERIES.get(alias)
    if series is None:
        series = _CONNECTION_SERIES[alias] = (
            DB_CONNECTIONS_OPEN.labels(alias=alias),
            DB_CONNECTION_AGE.labels(alias=alias),
        )
    return series


def _on_request_finished(sender, **kwargs):
    # Connected after django.db's close_old_connections (django.db connects it on import, before this
    # module exists), so a connection past CONN_MAX_AGE is already closed and not counted.
    sample_connections()


connection_created.connect(_on_connection_created, dispatch_uid="eoms.core.metrics.connection_created")
request_finished.connect(_on_request_finished, dispatch_uid="eoms.core.metrics.request_finished")


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
        yield from _server_connections()

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


def _server_connections():
    """The database server's own count of connections, and its limit, for each configured alias."""
    current = GaugeMetricFamily(
        "eoms_db_server_connections",
        "Connections the database server reports, by alias and state: on PostgreSQL the client backends "
        "connected to EOMS's database by pg_stat_activity state (unknown: a session of another role, "
        "whose state this role may not see); on MariaDB/MySQL all client threads of the server, running "
        "(Threads_running) or idle (the other Threads_connected). The states add up to the total. Not "
        "reported on SQLite.",
        labels=["alias", "state"],
    )
    limit = GaugeMetricFamily(
        "eoms_db_server_max_connections",
        "The database server's max_connections setting, by alias (PostgreSQL, MariaDB/MySQL).",
        labels=["alias"],
    )
    for alias in settings.DATABASES:
        connection = connections[alias]
        try:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute(
                        "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND backend_type = 'client backend' GROUP BY 1"
                    )
                    states = dict(cursor.fetchall())
                    cursor.execute("SHOW max_connections")
                elif connection.vendor == "mysql":
                    cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_connected', 'Threads_running')")
                    threads = {name.lower(): int(n) for name, n in cursor.fetchall()}
                    running = threads["threads_running"]
                    states = {"running": running, "idle": threads["threads_connected"] - running}
                    cursor.execute("SELECT @@max_connections")
                else:
                    continue
                max_connections = int(cursor.fetchone()[0])
        except DatabaseError:
            continue
        for state, n in sorted(states.items()):
            current.add_metric([alias, state], n)
        limit.add_metric([alias], max_connections)
    if current.samples:
        yield current
    if limit.samples:
        yield limit


REGISTRY.register(StateCollector())


class _AllWorkers:
    """Under gunicorn: the metrics every worker, live or gone, keeps in PROMETHEUS_MULTIPROC_DIR, added
    up; then whatever else the registry yields (the collectors read at scrape time). The answering
    worker's own copy of a file-backed metric is left out: the files hold it already."""

    def describe(self):
        return []

    def collect(self):
        merged = list(multiprocess.MultiProcessCollector(None).collect())
        names = {family.name for family in merged}
        yield from merged
        for family in REGISTRY.collect():
            if family.name not in names:
                yield family


def scrape_registry() -> CollectorRegistry:
    """What /metrics answers: this process's registry, or under gunicorn (PROMETHEUS_MULTIPROC_DIR set)
    every worker's values added up, beside the gauges read at scrape time."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_AllWorkers())
    return registry


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
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


# ------------------------------------------------------------------ events over the broker (issue 4)
# Counted by the process that does the work: the relay (`eoms relay`, or `eoms run`'s relay thread)
# and `eoms worker`, which serve them on their own port (eoms.core.process_metrics, --metrics-port).

RELAY_PUBLISHED = Counter(
    "eoms_relay_published",
    "Outbox messages the relay delivered: confirmed by the broker (mode=broker) or processed by the "
    "in-process handlers (mode=embedded).",
    ["mode"],
    registry=REGISTRY,
)
RELAY_FAILED = Counter(
    "eoms_relay_failed",
    "Outbox messages the relay could not deliver in a pass (refused or not confirmed by the broker, "
    "or a handler failed in-process); they stay in the outbox and go again.",
    ["mode"],
    registry=REGISTRY,
)
CONSUMER_PROCESSED = Counter(
    "eoms_consumer_processed",
    "Broker messages whose handlers all ran (or had already run), acked by eoms worker.",
    ["event_type"],
    registry=REGISTRY,
)
CONSUMER_FAILED = Counter(
    "eoms_consumer_failed",
    "Delivery attempts of broker messages that a handler failed (each retried after a delay, or dead-lettered).",
    ["event_type"],
    registry=REGISTRY,
)
CONSUMER_DEAD_LETTERED = Counter(
    "eoms_consumer_dead_lettered",
    "Broker messages given up after EOMS_BROKER_MAX_ATTEMPTS failed attempts, or unreadable.",
    ["event_type"],
    registry=REGISTRY,
)
MESSAGING_COUNTERS = (RELAY_PUBLISHED, RELAY_FAILED, CONSUMER_PROCESSED, CONSUMER_FAILED, CONSUMER_DEAD_LETTERED)


class DeadLetterCollector:
    """Open dead letters, read at scrape time (the admin page lists them)."""

    def describe(self):
        return []

    def collect(self):
        dead_letter = apps.get_model("core", "DeadLetter")
        try:
            count = dead_letter.objects.filter(state="open").count()
        except DatabaseError:
            return
        yield GaugeMetricFamily("eoms_dead_letters_open", "Dead letters waiting for an administrator.", value=count)


REGISTRY.register(DeadLetterCollector())
