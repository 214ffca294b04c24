"""API rate limits (eoms.core.ratelimit): per address, user and client, the stricter bucket of expensive
endpoints, 429 problem+json with Retry-After, Redis counters under concurrency, and the fallback to
this process's memory when Redis is down.

Most tests count in local memory (CACHES set to LocMemCache) under time-machine, so windows and
Retry-After are exact; the Redis tests use the real server at 127.0.0.1:6379. Every test counts under
keys of its own (conftest: API_RATE_KEY_PREFIX), so runs and parallel workers sharing Redis do not meet.
"""

import base64
import logging
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
import time_machine
from django.test import Client

from eoms.accounts.services import issue_api_token
from eoms.approvals.models import ApprovalDefinition
from eoms.core import ratelimit
from eoms.core.metrics import REGISTRY
from eoms.core.models import AuditEntry
from eoms.testing.concurrency import race
from eoms.testing.factories import UserFactory

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ratelimit-tests"}}
REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}
ME = "/api/v1/accounts/me"


def _bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def _basic(client_id: str, secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _refused(bucket: str) -> float:
    return REGISTRY.get_sample_value("eoms_api_rate_limited_total", {"bucket": bucket}) or 0.0


@pytest.fixture
def limits(settings):
    """Small limits, counted in local memory: the other buckets out of the way unless a test asks."""
    settings.CACHES = LOCMEM
    settings.API_RATE_WINDOW_SECONDS = 60
    settings.API_RATE_PER_IP = 0
    settings.API_RATE_PER_USER = 0
    settings.API_RATE_PER_CLIENT = 0
    settings.API_RATE_EXPENSIVE = 0
    return settings


def _problem(limit: int, seconds: int, bucket: str) -> dict:
    return {
        "type": "https://eoms.dev/problems/rate_limited",
        "title": "Too many requests",
        "status": 429,
        "detail": f"Rate limit of {limit} requests per 60 seconds reached; retry in {seconds} seconds.",
        "code": "rate_limited",
        "bucket": bucket,
    }


@pytest.mark.asvs("2.4.1")
def test_over_the_user_limit_answers_429_problem_json_with_retry_after_until_the_window_ends(world, limits):
    limits.API_RATE_PER_USER = 3
    _, secret = issue_api_token(actor=world.pm, name="erp")
    client = Client()
    with time_machine.travel(T0, tick=False) as clock:
        assert [client.get(ME, **_bearer(secret)).status_code for _ in range(3)] == [200, 200, 200]
        refused = client.get(ME, **_bearer(secret))
        assert refused.status_code == 429
        assert refused["Content-Type"] == "application/problem+json"
        assert refused["Retry-After"] == "60"
        assert refused.json() == _problem(3, 60, "user")
        clock.shift(timedelta(seconds=45.5))
        later = client.get(ME, **_bearer(secret))
        assert (later.status_code, later["Retry-After"]) == (429, "15")
        assert later.json()["detail"] == _problem(3, 15, "user")["detail"]
        clock.shift(timedelta(seconds=14.5))  # the window is over
        assert client.get(ME, **_bearer(secret)).status_code == 200


@pytest.mark.asvs("2.4.1")
def test_the_user_client_and_address_buckets_are_independent(world, limits):
    limits.API_RATE_PER_CLIENT = 2
    limits.API_RATE_PER_USER = 5
    _, first = issue_api_token(actor=world.pm, name="erp")
    _, second = issue_api_token(actor=world.pm, name="bi")
    _, others = issue_api_token(actor=world.approver, name="bi")
    client = Client()
    with time_machine.travel(T0, tick=False):
        assert [client.get(ME, **_bearer(first)).status_code for _ in range(3)] == [200, 200, 429]
        assert client.get(ME, **_bearer(first)).json()["bucket"] == "client"
        # Another token of the same user has a client bucket of its own, but the user's bucket is shared:
        # 4 of pm's requests passed or were refused so far, the 5th passes, the 6th is over the user's limit.
        assert client.get(ME, **_bearer(second)).status_code == 200
        over = client.get(ME, **_bearer(second))
        assert (over.status_code, over.json()["bucket"]) == (429, "user")
        # Another user's token from the same address is not affected.
        assert [client.get(ME, **_bearer(others)).status_code for _ in range(2)] == [200, 200]
        # A page session is no client: it counts only as its user (pm: over the limit; approver: not).
        session = Client()
        session.force_login(world.approver)
        assert session.get(ME).status_code == 200
        session.force_login(world.pm)
        assert session.get(ME).json()["bucket"] == "user"


@pytest.mark.asvs("2.4.1")
def test_requests_count_per_address_before_authentication(world, limits):
    limits.API_RATE_PER_IP = 3
    _, secret = issue_api_token(actor=world.pm, name="erp")
    client = Client()
    with time_machine.travel(T0, tick=False):
        bad = _bearer("eoms_00000000_not-a-token")
        statuses = [client.get(ME, REMOTE_ADDR="192.0.2.7", **bad).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        refused = client.get(ME, REMOTE_ADDR="192.0.2.7", **_bearer(secret))
        assert (refused.status_code, refused["Retry-After"]) == (429, "60")
        assert refused.json() == _problem(3, 60, "ip")
        assert refused["X-Request-ID"]  # answered inside the request context, like every API response
        assert client.get(ME, REMOTE_ADDR="192.0.2.8", **_bearer(secret)).status_code == 200
        assert client.get("/healthz", REMOTE_ADDR="192.0.2.7").status_code == 200  # pages and probes: no bucket


@pytest.mark.asvs("2.4.1")
def test_an_oauth2_client_has_a_bucket_of_its_own_beside_its_owners_tokens(world, limits):
    from oauth2_provider.models import Application

    from eoms.oauth.services import register_client

    limits.API_RATE_PER_CLIENT = 2
    registered, secret = register_client(
        actor=world.admin,
        name="ERP",
        grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_type=Application.CLIENT_CONFIDENTIAL,
        scopes=["accounts:read"],
        owner=world.pm,
    )
    client_id = registered.application.client_id
    _, personal = issue_api_token(actor=world.pm, name="erp")  # the client acts as pm, its owner
    client = Client()
    with time_machine.travel(T0, tick=False):
        form = {"grant_type": "client_credentials", "scope": "accounts:read"}
        token = client.post("/o/token/", form, **_basic(client_id, secret))
        assert token.status_code == 200, token.content
        access = token.json()["access_token"]
        assert [client.get(ME, **_bearer(access)).status_code for _ in range(3)] == [200, 200, 429]
        assert client.get(ME, **_bearer(access)).json()["bucket"] == "client"
        assert client.get(ME, **_bearer(personal)).status_code == 200


@pytest.mark.asvs("2.4.1")
def test_the_oauth2_token_endpoint_counts_per_address(world, limits):
    limits.API_RATE_PER_IP = 2
    client = Client()
    form = {"grant_type": "client_credentials"}
    with time_machine.travel(T0, tick=False):
        guesses = [client.post("/o/token/", form, **_basic("nobody", "guess")).status_code for _ in range(3)]
        assert guesses == [401, 401, 429]
        assert client.post("/o/token/", form, REMOTE_ADDR="192.0.2.9", **_basic("nobody", "guess")).status_code == 401


@pytest.mark.asvs("2.4.1")
def test_an_export_has_a_stricter_bucket_of_its_own(world, limits):
    limits.API_RATE_EXPENSIVE = 2
    limits.API_RATE_PER_USER = 10
    definition = ApprovalDefinition.objects.get(key="simple")
    _, secret = issue_api_token(actor=world.admin, name="modeler")
    export = f"/api/v1/approvals/definitions/{definition.id}/bpmn"
    client = Client()
    with time_machine.travel(T0, tick=False):
        assert [client.get(export, **_bearer(secret)).status_code for _ in range(3)] == [200, 200, 429]
        refused = client.get(export, **_bearer(secret))
        assert (refused["Retry-After"], refused.json()) == ("60", _problem(2, 60, "expensive"))
        # Cheap endpoints are still open to the same client; its 4 export calls counted as user requests.
        assert [client.get(ME, **_bearer(secret)).status_code for _ in range(6)] == [200] * 6
        assert client.get(ME, **_bearer(secret)).json()["bucket"] == "user"
        # The expensive bucket counts per client: another token of the same admin may export.
        _, other = issue_api_token(actor=world.admin, name="modeler 2")
        limits.API_RATE_PER_USER = 0
        assert client.get(export, **_bearer(other)).status_code == 200


@pytest.mark.asvs("2.4.1")
@pytest.mark.parametrize("report", ["dashboard", "cycle-times"])
def test_reports_count_in_the_expensive_bucket(world, limits, report):
    limits.API_RATE_EXPENSIVE = 1
    client = Client()
    client.force_login(world.admin)
    with time_machine.travel(T0, tick=False):
        assert client.get(f"/api/v1/reports/{report}").status_code == 200
        refused = client.get(f"/api/v1/reports/{report}")
        assert (refused.status_code, refused.json()["bucket"]) == (429, "expensive")


@pytest.mark.asvs("16.3.3")
def test_refusals_are_counted_and_logged_and_audited_once_per_window(world, limits, caplog):
    limits.API_RATE_PER_USER = 1
    _, secret = issue_api_token(actor=world.pm, name="erp")
    client = Client()
    before = _refused("user")
    audited = AuditEntry.objects.filter(action="api.rate_limited")
    with time_machine.travel(T0, tick=False) as clock, caplog.at_level(logging.INFO, logger="eoms.core.ratelimit"):
        statuses = [client.get(ME, **_bearer(secret)).status_code for _ in range(6)]
        assert statuses == [200] + [429] * 5
        assert _refused("user") - before == 5
        assert audited.count() == 1
        entry = audited.get()
        assert (entry.actor_id, entry.object_type, entry.object_repr, entry.ip) == (
            world.pm.pk,
            "core.rate_limit",
            str(world.pm.pk),
            "127.0.0.1",
        )
        assert entry.changes == {"bucket": "user", "limit": 1, "window_seconds": 60}
        assert caplog.text.count("API rate limit reached: user bucket, 1 requests per 60 s") == 1
        assert caplog.text.count("API rate limit: user bucket over 1") == 5
        clock.shift(timedelta(seconds=60))  # the next window: its first refusal is audited again
        assert [client.get(ME, **_bearer(secret)).status_code for _ in range(3)] == [200, 429, 429]
        assert audited.count() == 2


@pytest.mark.asvs("2.4.1")
def test_redis_counters_are_exact_under_concurrent_requests(db, settings):
    settings.CACHES = REDIS
    settings.API_RATE_PER_CLIENT = 120
    subject = f"token:{uuid.uuid4()}"

    def work(i):
        return [ratelimit.hit([("client", subject)])[0] for _ in range(5)]

    hits = [h for result in race(40, work) for h in result]
    assert sorted(h.count for h in hits) == list(range(1, 201))
    assert sum(not h.refused for h in hits) == 120
    assert {h.key for h in hits} == {hits[0].key}
    assert hits[0].key.startswith(settings.API_RATE_KEY_PREFIX + ":client:")
    ttl = redis.Redis(host="127.0.0.1", port=6379).pttl(hits[0].key)
    assert 55_000 < ttl <= 60_000  # one window, set once by the first request


def test_redis_forgetting_the_script_or_closing_the_connection_loses_no_count(db, settings, caplog):
    """The limits keep one connection per thread and send the script by its SHA-1: a Redis that forgot
    the script (restarted, SCRIPT FLUSH) gets it again, a connection it closed is made again, and the
    counts stay in Redis (not in this process), without a warning."""
    settings.CACHES = REDIS
    settings.API_RATE_PER_CLIENT = 100
    subject = f"token:{uuid.uuid4()}"
    server = redis.Redis(host="127.0.0.1", port=6379)
    with caplog.at_level(logging.WARNING, logger="eoms.core.ratelimit"):
        assert ratelimit.hit([("client", subject)])[0].count == 1
        server.script_flush()
        assert ratelimit.hit([("client", subject)])[0].count == 2
        connection = ratelimit._redis._connection()
        connection.send_command("CLIENT", "ID")
        server.client_kill_filter(_id=connection.read_response())
        assert ratelimit.hit([("client", subject)])[0].count == 3
        assert ratelimit._redis._connection() is not connection
    assert "Redis failed" not in caplog.text


@pytest.mark.asvs("2.4.1")
@pytest.mark.django_db(transaction=True)
def test_over_http_with_redis_concurrent_requests_of_one_user_pass_exactly_the_limit(settings):
    settings.CACHES = REDIS
    settings.API_RATE_PER_USER = 25
    _, secret = issue_api_token(actor=UserFactory(), name="erp")

    def work(i):
        client = Client()
        return [client.get(ME, **_bearer(secret)).status_code for _ in range(5)]

    statuses = [s for result in race(8, work) for s in result]
    assert sorted(statuses) == [200] * 25 + [429] * 15


@pytest.mark.asvs("2.4.1")
def test_with_redis_down_requests_are_limited_in_this_process(world, settings, caplog, monkeypatch):
    monkeypatch.setattr(ratelimit, "_warned_at", -60.0)  # as in a fresh process
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {**REDIS["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"},
    }
    settings.API_RATE_PER_USER = 2
    settings.API_RATE_PER_IP = 100
    _, secret = issue_api_token(actor=world.pm, name="erp")
    client = Client()
    with caplog.at_level(logging.WARNING, logger="eoms.core.ratelimit"):
        statuses = [client.get(ME, **_bearer(secret)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    # Warned once a minute, not on each of the six counts (address and user of three requests).
    assert caplog.text.count("API rate limits: Redis failed (ConnectionError); counting in this process") == 1


def test_the_openapi_document_says_every_operation_may_answer_429(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    operations = [op for ops in paths.values() for op in ops.values()]
    assert len(operations) > 50 and all("429" in op["responses"] for op in operations)
    assert paths["/api/v1/accounts/me"]["get"]["responses"]["429"] == {
        "description": "Too many requests: a rate limit is reached (code rate_limited; `bucket` says which).",
        "headers": {
            "Retry-After": {"description": "Seconds until the limit's window ends.", "schema": {"type": "integer"}}
        },
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemSchema"}}},
    }
