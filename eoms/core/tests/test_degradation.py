"""Issue 4's degradation: with Redis or the broker unreachable, pages and the API keep answering.

"Unreachable" is a real closed port on 127.0.0.1 (bound once to learn a free number, then closed),
never the shared Redis or RabbitMQ stopped, so these tests run beside others (pytest-xdist too).

- Redis down: the cache is what `REDIS_URL` makes of it in eoms/settings.py (read from a fresh
  process started with REDIS_URL at the closed port). For a signed-in user (sessions are in the
  database) pages, forms and the API answer as usual; /readyz says the cache is degraded and still
  answers 200 (the pod stays in the load balancer). The cache backend itself raises on a dead
  Redis (Django's RedisCache has no "ignore exceptions" option): code that reads the cache in a
  request must treat a failure as a miss, as /readyz does.
- Broker down: page writes succeed and their events wait in the outbox (the relay cannot publish
  them), /readyz says the broker is degraded; once the broker is reachable again every waiting
  event is published and consumed, none lost. (The API under a stopped RabbitMQ is
  test_broker_chaos's second test.)
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import redis
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from eoms.core import relay
from eoms.core.consumer import Worker
from eoms.core.models import OutboxMessage
from eoms.orders.models import Order
from eoms.orders.state import OrderState
from eoms.testing.broker import BROKER_TEST_URL, use_test_broker


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _caches_for(redis_url: str) -> dict:
    """settings.CACHES as eoms/settings.py builds it in a process started with this REDIS_URL."""
    code = "import json; from django.conf import settings; print(json.dumps(settings.CACHES))"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "eoms.settings", "REDIS_URL": redis_url}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _pages(world, order) -> list[str]:
    return [
        reverse("dashboard"),
        reverse("orders:list"),
        reverse("orders:detail", args=[order.id]),
        reverse("orders:edit", args=[order.id]),
        reverse("approvals:inbox"),
        reverse("notifications:inbox"),
        reverse("notifications:preferences"),
    ]


def _edit(client: Client, order: Order, title: str):
    order.refresh_from_db()
    return client.post(
        reverse("orders:edit", args=[order.id]),
        {
            "version": order.version,
            "title": title,
            "kind": order.kind,
            "contract_amount": "2000000.00",
            "tax_rate": "0.09",
            "stage_owner": str(order.stage_owner_id),
            "stage_deadline": "",
            "description": "",
        },
    )


# ------------------------------------------------------------------------------------ Redis down


def test_redis_down_pages_and_api_answer_and_readyz_says_the_cache_is_degraded(world, settings):
    port = _closed_port()
    caches = _caches_for(f"redis://127.0.0.1:{port}/0")
    assert caches == {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    settings.CACHES = caches
    with pytest.raises(redis.exceptions.ConnectionError):  # the cache really is unreachable
        cache.get("eoms:probe")

    order = world.order(OrderState.INITIATED)
    client = Client()
    assert client.get(reverse("login")).status_code == 200
    # Signing in too: the sign-in throttle counts in this process while the shared cache is down.
    signed_in = client.post(reverse("login"), {"username": world.pm.username, "password": "pass-word-123"})
    assert (signed_in.status_code, signed_in["Location"]) == (302, "/")
    statuses = {path: client.get(path).status_code for path in _pages(world, order)}
    assert statuses == dict.fromkeys(_pages(world, order), 200)

    assert _edit(client, order, "Redis 已停").status_code == 302
    listed = client.get("/api/v1/orders")
    assert listed.status_code == 200
    assert str(order.id) in {row["id"] for row in listed.json()["results"]}
    patched = client.patch(f"/api/v1/orders/{order.id}", '{"title": "缓存不可用"}', content_type="application/json")
    assert patched.status_code == 200
    assert client.get(f"/api/v1/orders/{order.id}").json()["title"] == "缓存不可用"
    assert Order.objects.get(pk=order.pk).title == "缓存不可用"

    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "cache": "degraded",
        "broker": "ok",
    }
    assert body["checks"]["cache"]["error"] == "ConnectionError"
    assert str(port) not in ready.content.decode()  # no address told to an unauthenticated caller


# ----------------------------------------------------------------------------------- broker down

EDITS = 20


@pytest.fixture
def broker_settings(settings):
    yield from use_test_broker(settings)


@pytest.mark.broker
def test_broker_down_pages_keep_working_and_every_event_waits_then_is_delivered(world, broker_settings):
    order = world.order(OrderState.INITIATED)
    client = Client()
    client.force_login(world.pm)
    relay.drain()  # the world's own events are out before the broker goes
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0
    delivered: list = []
    relay.handles("orders.order_updated", name="test.degradation.updates")(lambda m: delivered.append(m.message_id))
    try:
        broker_settings.BROKER_URL = f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"
        ready = client.get("/readyz").json()
        assert (ready["status"], ready["checks"]["broker"]["status"]) == ("degraded", "degraded")

        statuses = []
        for i in range(EDITS):
            statuses.append(_edit(client, order, f"停机 {i}").status_code)
            statuses += [client.get(path).status_code for path in _pages(world, order)[:3]]
        assert statuses == [302, 200, 200, 200] * EDITS
        with pytest.raises(relay.TransportUnavailable):
            relay.relay_once()
        waiting = OutboxMessage.objects.filter(sent_at__isnull=True)
        assert list(waiting.values_list("event_type", flat=True).distinct()) == ["orders.order_updated"]
        assert waiting.count() == EDITS
        waiting_ids = set(waiting.values_list("message_id", flat=True))
        assert client.get("/readyz").json()["outbox"]["backlog"] == EDITS

        broker_settings.BROKER_URL = BROKER_TEST_URL  # the broker is back
        assert client.get("/readyz").json()["checks"]["broker"]["status"] == "ok"
        assert relay.drain() == EDITS
        assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0
        Worker(queues=["handlers"]).run(until=lambda: len(delivered) >= EDITS, timeout=60)
    finally:
        relay.unregister("test.degradation.updates")
    assert len(delivered) == EDITS
    assert set(delivered) == waiting_ids
    order.refresh_from_db()
    assert order.title == f"停机 {EDITS - 1}"
