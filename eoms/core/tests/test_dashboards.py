"""deploy/prometheus/alerts.yml and deploy/grafana/eoms-dashboard.json hold together with what
Prometheus scrapes: every eoms_* metric they name is in the live output, and every label they select or
group by is one that metric carries (or one Prometheus adds when scraping).

Prometheus scrapes two kinds of endpoint, as in production: the web's /metrics (request metrics and the
gauges read from the database, the open dead letters among them) and the `--metrics-port` of `eoms relay`
and `eoms worker` (eoms.core.process_metrics), which alone count the relay's and consumers' work: under
`eoms serve` the web workers neither relay nor consume, so their /metrics has those counters without a
sample. The relay and consumer counters are therefore checked against the metrics port's output.
"""

import json
import re
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from eoms.core import process_metrics, relay
from eoms.core.metrics import (
    CONSUMER_DEAD_LETTERED,
    CONSUMER_FAILED,
    CONSUMER_PROCESSED,
    MESSAGING_COUNTERS,
    RELAY_FAILED,
    RELAY_PUBLISHED,
)
from eoms.core.models import OutboxMessage

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "eoms-dashboard.json"
TOKEN = "dashboards-test-token"
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus to every series it scrapes
METRIC = re.compile(r"\b(eoms_[a-z0-9_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# Read from the database server at scrape time, so absent on SQLite by design: there they are taken as
# exposed with these labels, which the PostgreSQL and MariaDB runs of the suite check against live output.
SERVER_ONLY = {"eoms_db_server_connections": {"alias", "state"}, "eoms_db_server_max_connections": {"alias"}}
REQUIRED_ALERTS = {
    "EomsHighErrorRate",
    "EomsSlowRequestsP99",
    "EomsOutboxBacklogOld",
    "EomsDatabaseDown",
    "EomsReadinessDegraded",
    "EomsDataDiskLow",
    "EomsDatabaseConnectionsNearLimit",
    "EomsDeadLettersOpen",
}
# Served by the relay's and workers' --metrics-port, not by the web's /metrics (see the module docstring).
MESSAGING_SAMPLES = {f"{counter.describe()[0].name}_total" for counter in MESSAGING_COUNTERS}


def _samples(text: str) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


@pytest.fixture
def web_exposed(client, settings, world) -> dict[str, set[str]]:
    """Sample name → label names, from a /metrics answer after traffic that fills every family."""
    settings.EOMS_METRICS_TOKEN = TOKEN
    world.order()
    client.get("/healthz")
    client.post("/login/", {"username": world.pm.username, "password": "wrong"})
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    names = _samples(response.content.decode())
    if connection.vendor == "sqlite":
        assert not names.keys() & SERVER_ONLY.keys()
        names.update({name: set(labels) for name, labels in SERVER_ONLY.items()})
    else:
        assert {name: names.get(name) for name in SERVER_ONLY} == SERVER_ONLY
    assert names["eoms_dead_letters_open"] == set()
    return names


@pytest.fixture
def process_exposed(settings, web_exposed) -> dict[str, set[str]]:
    """Sample name → label names, from the counters a relay or worker serves on its --metrics-port,
    after a real relay pass over the order's outbox messages (in-process: mode="embedded"). A labelled
    counter prints a sample once a child exists, after its first increment in the process; the counters
    this test cannot drive without a failing handler get that child at zero, labelled like a real one."""
    settings.EOMS_METRICS_TOKEN = TOKEN
    event_type = OutboxMessage.objects.filter(sent_at__isnull=True).order_by("id").first().event_type
    published = RELAY_PUBLISHED.labels(mode="embedded")._value.get()
    delivered = relay.relay_once(relay.InProcessTransport())
    assert delivered == OutboxMessage.objects.count() > 0
    assert RELAY_PUBLISHED.labels(mode="embedded")._value.get() - published == delivered
    RELAY_FAILED.labels(mode="broker").inc(0)
    for counter in (CONSUMER_PROCESSED, CONSUMER_FAILED, CONSUMER_DEAD_LETTERED):
        counter.labels(event_type=event_type).inc(0)
    server = process_metrics.serve("127.0.0.1:0")
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.server_port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            names = _samples(response.read().decode())
    finally:
        server.shutdown()
        server.server_close()
    assert set(names) == MESSAGING_SAMPLES, "the metrics port serves the relay and consumer counters only"
    return names


@pytest.fixture
def exposed(web_exposed, process_exposed) -> dict[str, set[str]]:
    """What Prometheus scrapes: the web's /metrics, and the relay's and workers' metrics port."""
    return {
        **{name: labels for name, labels in web_exposed.items() if name not in MESSAGING_SAMPLES},
        **process_exposed,
    }


def _alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _expressions() -> list[tuple[str, str]]:
    exprs = [(f"alert {rule['alert']}", rule["expr"]) for rule in _alert_rules()]
    dashboard = _dashboard()
    for panel in dashboard["panels"]:
        exprs += [(f"panel {panel['title']!r}", target["expr"]) for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append((f"variable {variable['name']}", variable["definition"]))
    return exprs


def test_alert_rules_are_complete():
    rules = _alert_rules()
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_dashboard_is_importable_grafana_json():
    dashboard = _dashboard()
    assert dashboard["uid"] == "eoms-overview"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job"}
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]


def test_dashboard_covers_what_the_issue_asks_to_watch():
    referenced = {name for _where, expr in _expressions() for name, _sel in METRIC.findall(expr)}
    assert referenced >= {
        "eoms_http_requests_total",
        "eoms_http_request_duration_seconds_bucket",
        "eoms_db_queries_per_request_bucket",
        "eoms_db_query_seconds_per_request_sum",
        "eoms_outbox_backlog",
        "eoms_outbox_oldest_age_seconds",
        "eoms_orders",
        "eoms_login_failures_total",
        "eoms_ready",
        "eoms_data_dir_free_bytes",
        "eoms_db_connections_open",
        "eoms_db_connection_age_seconds",
        "eoms_db_server_connections",
        "eoms_db_server_max_connections",
        "eoms_relay_published_total",
        "eoms_relay_failed_total",
        "eoms_consumer_processed_total",
        "eoms_consumer_failed_total",
        "eoms_consumer_dead_lettered_total",
        "eoms_dead_letters_open",
    }


@pytest.mark.django_db
def test_every_metric_and_label_referenced_exists_in_metrics_output(exposed):
    missing = []
    for where, expr in _expressions():
        used = METRIC.findall(expr)
        assert used, f"{where} references no eoms_* metric"
        labels_of_expr = set(SCRAPE_LABELS)
        for name, selector in used:
            if name not in exposed:
                missing.append(f"{where}: {name}")
                continue
            labels = exposed[name] | SCRAPE_LABELS
            labels_of_expr |= labels
            for label in MATCHER.findall(selector or ""):
                if label[0] not in labels:
                    missing.append(f"{where}: {name} has no label {label[0]}")
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                if label not in labels_of_expr:
                    missing.append(f"{where}: groups by {label}, which no metric of it carries")
    assert missing == []


@pytest.mark.django_db
def test_relay_and_consumer_counters_are_taken_from_the_metrics_port(web_exposed, process_exposed):
    referenced = {name for _where, expr in _expressions() for name, _sel in METRIC.findall(expr)}
    assert referenced & MESSAGING_SAMPLES == MESSAGING_SAMPLES
    assert process_exposed == {
        "eoms_relay_published_total": {"mode"},
        "eoms_relay_failed_total": {"mode"},
        "eoms_consumer_processed_total": {"event_type"},
        "eoms_consumer_failed_total": {"event_type"},
        "eoms_consumer_dead_lettered_total": {"event_type"},
    }
    # The open dead letters are read from the database by the web's /metrics, not by the metrics port.
    assert "eoms_dead_letters_open" in web_exposed and "eoms_dead_letters_open" not in process_exposed


@pytest.mark.django_db
def test_the_check_catches_a_metric_that_does_not_exist(exposed):
    assert "eoms_http_requests_total" in exposed
    assert "eoms_http_request_total" not in exposed
    assert exposed["eoms_http_requests_total"] == {"method", "route", "status"}
    assert exposed["eoms_http_request_duration_seconds_bucket"] == {"method", "route", "le"}
