"""/metrics: the token gate, request metrics by route template, and the gauges read at scrape time.

Counters live for the whole process, so tests compare a scrape before and after what they do.
"""

import shutil
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps
from django.db import connection, connections
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from eoms.core import metrics
from eoms.core.models import OutboxMessage

TOKEN = "test-metrics-token-0123456789"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _token(settings):
    settings.EOMS_METRICS_TOKEN = TOKEN


def scrape(client) -> dict:
    """{(sample name, frozenset of labels): value} of one /metrics answer."""
    response = client.get("/metrics", **AUTH)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_is_not_there_without_a_token_configured(client, settings):
    settings.EOMS_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN, "Bearer"],
)
def test_metrics_refuses_a_missing_or_wrong_token(client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    response = client.get("/metrics", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"eoms_" not in response.content


@pytest.mark.django_db
def test_metrics_answers_prometheus_text_to_the_token(client):
    response = client.get("/metrics", **AUTH)
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    assert b"# TYPE eoms_http_requests_total counter" in response.content
    assert b"# TYPE eoms_http_request_duration_seconds histogram" in response.content
    # No *_created series (label values may well say "created": approvals.task_created).
    samples = [s.name for f in text_string_to_metric_families(response.content.decode()) for s in f.samples]
    assert samples and not [name for name in samples if name.endswith("_created")]


@pytest.mark.django_db
def test_a_request_counts_under_its_route_template_not_its_path(client, world):
    order = world.order()
    client.force_login(world.pm)
    before = scrape(client)
    assert client.get(f"/orders/{order.id}/").status_code == 200
    assert client.get(f"/api/v1/orders/{order.id}").status_code == 200
    after = scrape(client)

    route = "orders/<uuid:order_id>/"
    labels = {"method": "GET", "route": route, "status": "200"}
    assert value(after, "eoms_http_requests_total", **labels) - value(before, "eoms_http_requests_total", **labels) == 1
    duration = {"method": "GET", "route": route}
    count = "eoms_http_request_duration_seconds_count"
    assert value(after, count, **duration) - value(before, count, **duration) == 1
    api = {"method": "GET", "route": "api/v1/orders/<order_id>", "status": "200"}
    assert value(after, "eoms_http_requests_total", **api) - value(before, "eoms_http_requests_total", **api) == 1
    assert str(order.id) not in client.get("/metrics", **AUTH).content.decode()


@pytest.mark.django_db
def test_an_unknown_path_counts_as_unmatched(client):
    before = scrape(client)
    assert client.get("/no/such/page/12345/").status_code == 404
    after = scrape(client)
    labels = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, "eoms_http_requests_total", **labels) - value(before, "eoms_http_requests_total", **labels) == 1
    assert not any("12345" in dict(key[1]).get("route", "") for key in after)


@pytest.mark.django_db
def test_every_request_observes_its_query_count_and_time(client, world):
    order = world.order()
    client.force_login(world.pm)
    before = scrape(client)
    assert client.get(f"/orders/{order.id}/").status_code == 200
    assert client.get("/healthz").status_code == 200  # no statements at all
    after = scrape(client)

    # the scrape in between ran statements too, but is observed only after it has answered
    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("eoms_db_queries_per_request_count") == 3  # the page, the healthz, the first scrape
    assert delta("eoms_db_queries_per_request_bucket", le="0.0") == 1  # the healthz
    assert delta("eoms_db_query_seconds_per_request_count") == 3
    assert delta("eoms_db_query_seconds_per_request_sum") > 0


class _Statements:
    """Counts what Django runs on a connection (a test-side instrument, like CaptureQueriesContext, which
    cannot see through the test client because each request starts by resetting the query log)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


@pytest.mark.django_db
def test_queries_of_one_request_sum_to_what_django_ran(client, world):
    order = world.order()
    client.force_login(world.pm)
    client.get(f"/orders/{order.id}/")  # warm up: session and content types are cached after this
    before = scrape(client)
    after_first = scrape(client)
    scrape_statements = value(after_first, "eoms_db_queries_per_request_sum") - value(
        before, "eoms_db_queries_per_request_sum"
    )
    statements = _Statements()
    with connection.execute_wrapper(statements):
        assert client.get(f"/orders/{order.id}/").status_code == 200
    after = scrape(client)
    page = value(after, "eoms_db_queries_per_request_sum") - value(after_first, "eoms_db_queries_per_request_sum")
    assert statements.count > 0
    assert page == statements.count + scrape_statements


@pytest.mark.django_db
def test_failed_sign_ins_are_counted(client, world):
    before = scrape(client)
    response = client.post("/login/", {"username": world.pm.username, "password": "not-the-password"})
    assert response.status_code == 200  # the form again, with the error
    client.post("/login/", {"username": "nobody-by-this-name", "password": "x"})
    after = scrape(client)
    assert value(after, "eoms_login_failures_total") - value(before, "eoms_login_failures_total") == 2


@pytest.mark.django_db
def test_orders_by_state_are_counted_at_scrape_time(client, world):
    states = [value for value, _label in apps.get_model("orders", "Order")._meta.get_field("state").choices]
    assert len(states) == 13
    empty = scrape(client)
    by_state = {dict(labels)["state"]: v for (name, labels), v in empty.items() if name == "eoms_orders"}
    assert by_state == dict.fromkeys(states, 0.0)
    world.order()
    world.order()
    world.order("QUOTING")
    samples = scrape(client)
    assert value(samples, "eoms_orders", state="INITIATED") == 2
    assert value(samples, "eoms_orders", state="QUOTING") == 1
    assert value(samples, "eoms_orders", state="SETTLED") == 0


@pytest.mark.django_db
def test_outbox_backlog_and_oldest_age(client, world):
    OutboxMessage.objects.update(sent_at=timezone.now())
    empty = scrape(client)
    assert value(empty, "eoms_outbox_backlog") == 0
    assert value(empty, "eoms_outbox_oldest_age_seconds") == 0
    with time_machine.travel(NOW, tick=False):
        world.order()
    with time_machine.travel(NOW + timedelta(seconds=20), tick=False):
        world.order()
    with time_machine.travel(NOW + timedelta(seconds=125), tick=False):
        samples = scrape(client)
    assert value(samples, "eoms_outbox_backlog") == 2
    assert value(samples, "eoms_outbox_oldest_age_seconds") == 125.0


@pytest.mark.django_db
def test_data_dir_disk_space(client, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    samples = scrape(client)
    usage = shutil.disk_usage(tmp_path)
    assert value(samples, "eoms_data_dir_size_bytes") == usage.total
    assert 0 < value(samples, "eoms_data_dir_free_bytes") <= usage.total


@pytest.mark.django_db
def test_readiness_of_each_component(client, settings):
    samples = scrape(client)
    for component in ("database", "cache", "broker"):
        assert value(samples, "eoms_ready", component=component) == 1.0
        assert ("eoms_ready_check_latency_seconds", frozenset({"component": component}.items())) in samples
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.BROKER_URL = f"amqp://127.0.0.1:{port}/"
    samples = scrape(client)
    assert value(samples, "eoms_ready", component="broker") == 0.0
    assert value(samples, "eoms_ready", component="database") == 1.0


@pytest.fixture
def probe(tmp_path):
    """A connection of its own, alias "probe", that can really be closed (the in-memory SQLite test
    database cannot), and that no other thread of the test process shares: its counts are exact."""
    probe_db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "probe.sqlite3")}
    settings_dict = connections.configure_settings({"default": probe_db, "probe": probe_db})["probe"]
    wrapper = SQLiteWrapper(settings_dict, alias="probe")
    yield wrapper
    wrapper.close()
    metrics.DB_CONNECTIONS_OPEN.remove("probe")
    metrics.DB_CONNECTION_AGE.remove("probe")


@pytest.mark.django_db
def test_connections_kept_open_are_sampled_as_each_request_finishes(client, probe):
    probe.ensure_connection()
    assert client.get("/healthz").status_code == 200
    samples = scrape(client)
    assert value(samples, "eoms_db_connections_open", alias="probe") == 1
    assert 0 < value(samples, "eoms_db_connection_age_seconds", alias="probe") < 60
    assert value(samples, "eoms_db_connections_open", alias="default") >= 1  # this test's own, at least

    probe.close()
    samples = scrape(client)  # the scrape before it finished: the probe was still counted
    assert value(samples, "eoms_db_connections_open", alias="probe") == 1
    samples = scrape(client)
    assert value(samples, "eoms_db_connections_open", alias="probe") == 0
    assert value(samples, "eoms_db_connection_age_seconds", alias="probe") == 0


@pytest.mark.django_db
def test_connection_age_is_measured_from_when_it_was_opened(probe):
    assert metrics.sample_connections().get("probe", (0, 0.0)) == (0, 0.0)
    before = time.time()
    probe.ensure_connection()
    after = time.time()
    sample = metrics.sample_connections(now=after + 30)
    count, age = sample["probe"]
    assert count == 1
    assert 30 <= age <= 30 + (after - before)
    assert set(sample) >= {"default", "probe"}

    probe.close()
    assert metrics.sample_connections(now=after + 60)["probe"] == (0, 0.0)
    probe.ensure_connection()
    count, age = metrics.sample_connections(now=time.time() + 5)["probe"]
    assert count == 1
    assert 5 <= age < 30  # a new connection, not the first one's age


def _server_count(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


@pytest.mark.django_db
def test_the_database_servers_own_count_of_connections(client):
    samples = scrape(client)
    server = {
        dict(labels)["state"]: v
        for (name, labels), v in samples.items()
        if name == "eoms_db_server_connections" and dict(labels)["alias"] == "default"
    }
    limit = ("eoms_db_server_max_connections", frozenset({"alias": "default"}.items()))
    if connection.vendor == "sqlite":
        assert server == {}
        assert limit not in samples
        assert not any(name.startswith("eoms_db_server_") for name, _labels in samples)
    elif connection.vendor == "postgresql":
        # the scrape's own query is the one active session of this (test) database
        assert server["active"] == 1
        total = _server_count(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND backend_type = 'client backend'"
        )[0][0]
        assert sum(server.values()) == total
        assert samples[limit] == int(_server_count("SHOW max_connections")[0][0])
    else:
        assert connection.vendor == "mysql"
        # the whole server's threads, which other clients change at any time: the scrape's own is running
        assert set(server) == {"idle", "running"}
        assert server["running"] >= 1
        assert server["idle"] >= 0
        assert samples[limit] == _server_count("SELECT @@max_connections")[0][0]
