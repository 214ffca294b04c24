"""/healthz and /readyz: exact bodies and status codes, and what each does when a dependency fails."""

import socket
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import OperationalError, connections
from django.utils import timezone

from eoms.core.models import OutboxMessage
from eoms.testing.broker import BROKER_TEST_URL

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def _free_port() -> int:
    """A port nothing listens on: bound once to learn a free number, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz_answers_ok_without_touching_the_database(client):
    # no django_db mark: any database access here would raise
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_takes_only_get(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_readyz_reports_every_check_with_latency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "checks", "outbox"}
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "broker"}
    for name in ("database", "cache"):
        assert set(body["checks"][name]) == {"status", "latency_ms"}
        assert body["checks"][name]["status"] == "ok"
        assert isinstance(body["checks"][name]["latency_ms"], float)
        assert body["checks"][name]["latency_ms"] >= 0.0
    assert body["checks"]["broker"] == {"status": "ok", "latency_ms": 0.0, "mode": "embedded"}
    assert body["outbox"] == {"backlog": 0, "oldest_age_seconds": None}


@pytest.mark.django_db
def test_readyz_counts_the_unsent_outbox_and_the_age_of_the_oldest(client, world):
    OutboxMessage.objects.update(sent_at=timezone.now())  # what building the world emitted is delivered
    with time_machine.travel(NOW, tick=False):
        world.order()  # create_order: one message
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        world.order()
    sent = OutboxMessage.objects.filter(sent_at__isnull=True).order_by("-id").first()
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        sent.sent_at = timezone.now()
        sent.save(update_fields=["sent_at"])  # a delivered message does not count
    with time_machine.travel(NOW + timedelta(seconds=90), tick=False):
        body = client.get("/readyz").json()
    assert body["outbox"] == {"backlog": 1, "oldest_age_seconds": 90.0}


@pytest.mark.django_db
def test_readyz_answers_503_when_the_database_fails(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(connections["default"], "cursor", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["checks"]["database"]["status"] == "down"
    assert body["checks"]["database"]["error"] == "OperationalError"
    assert body["outbox"] is None
    assert b"Connection refused" not in response.content


@pytest.mark.django_db
def test_readyz_is_degraded_but_serving_when_the_cache_fails(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_free_port()}/0",
        }
    }
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "degraded"
    assert body["checks"]["cache"]["error"] == "ConnectionError"
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.broker
@pytest.mark.django_db
def test_readyz_reaches_the_broker_when_broker_url_is_set(client, settings):
    settings.BROKER_URL = BROKER_TEST_URL
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"
    assert body["checks"]["broker"]["mode"] == "broker"
    assert set(body["checks"]["broker"]) == {"status", "latency_ms", "mode"}
    assert 0 < body["checks"]["broker"]["latency_ms"] < 1000
    assert b"guest" not in response.content
    assert b"127.0.0.1" not in response.content


@pytest.mark.django_db
def test_readyz_is_degraded_when_the_port_answers_but_not_in_amqp(client, settings):
    # A TCP listener that never speaks AMQP: the connection opens, the handshake never comes (a hung
    # broker, or the wrong service on the port); the check gives up after its one second.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        settings.BROKER_URL = f"amqp://eoms:s3cret-pass@127.0.0.1:{port}/%2F"
        response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["status"] == "degraded"
    assert body["checks"]["broker"]["error"] == "TimeoutError"
    assert 900 <= body["checks"]["broker"]["latency_ms"] < 3000
    assert b"s3cret-pass" not in response.content


@pytest.mark.broker
@pytest.mark.django_db
def test_readyz_is_degraded_when_the_broker_refuses_the_credentials(client, settings):
    settings.BROKER_URL = BROKER_TEST_URL.replace("guest:guest@", "guest:not-the-password@")
    body = client.get("/readyz").json()
    assert body["status"] == "degraded"
    assert body["checks"]["broker"] == {
        "status": "degraded",
        "latency_ms": body["checks"]["broker"]["latency_ms"],
        "mode": "broker",
        "error": "AccessRefused",
    }


@pytest.mark.django_db
def test_readyz_is_degraded_when_the_broker_does_not_answer(client, settings):
    settings.BROKER_URL = f"amqp://eoms:s3cret-pass@127.0.0.1:{_free_port()}/%2F"
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["status"] == "degraded"
    assert body["checks"]["broker"]["mode"] == "broker"
    assert body["checks"]["broker"]["error"] == "ConnectionRefusedError"
    assert b"s3cret-pass" not in response.content


@pytest.mark.django_db
def test_readyz_is_degraded_when_broker_url_names_no_host(client, settings):
    settings.BROKER_URL = "amqp:///%2F"
    body = client.get("/readyz").json()
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["status"] == "degraded"
    assert body["checks"]["broker"]["error"] == "BROKER_URL has no host or port"
