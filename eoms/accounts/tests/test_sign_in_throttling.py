"""Lockout and throttling of failed sign-ins (eoms.accounts.throttling), per account and per address.

The counters live in the configured cache: the local memory in the SQLite run, Redis when REDIS_URL is
set (the PostgreSQL run), so the concurrency tests run against both. Every test signs in with its own
usernames and client addresses, so counters left in a shared Redis by other tests or runs do not meet.
"""

import ipaddress
import logging
import threading
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import SESSION_KEY
from django.db import connection
from django.test import Client
from django.utils import timezone

from eoms.accounts import throttling
from eoms.core.metrics import REGISTRY
from eoms.core.models import AuditEntry
from eoms.testing.concurrency import race
from eoms.testing.factories import UserFactory

PASSWORD = "pass-word-123"
WRONG = "canary-WRONG-pw-7f3a91"
WRONG_MESSAGE = "Your username and password didn't match. Please try again."
LOCKED_MESSAGE = "Your username and password didn't match. Please try again later."


def _ip() -> str:
    """A fresh documentation address (2001:db8::/32) for each caller."""
    # In the one spelling the audit stores (compressed, no leading zeros: "0c22" would read "c22").
    return str(ipaddress.ip_address(f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"))


def _name() -> str:
    return f"u{uuid.uuid4().hex[:12]}"


def _post(client, username, password, ip):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def _sample(name, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ASVS V6.3.1 (controls against credential stuffing and brute force): counting is atomic under concurrency


@pytest.mark.asvs("6.3.1")
def test_the_counter_counts_every_concurrent_increment_once():
    key = throttling.account_key(_name())
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(40)

    def work():
        barrier.wait(timeout=30)
        value = throttling._increment(key)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=work) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == list(range(1, 41))


@pytest.mark.asvs("6.3.1")
def test_of_100_concurrent_attempts_on_one_account_only_the_limit_is_evaluated(settings):
    username = _name()
    settings.LOGIN_MAX_FAILURES_PER_IP = 1000
    attempts = []
    lock = threading.Lock()
    barrier = threading.Barrier(100)

    def work(i):
        barrier.wait(timeout=30)
        attempt = throttling.begin(username=username, ip=_ip() if i % 2 else "198.51.100.7")
        started = throttling.failed(attempt) if not attempt.refused else attempt.started
        with lock:
            attempts.append((attempt, started))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    evaluated = [a for a, _s in attempts if not a.refused]
    assert len(evaluated) == 5
    assert sorted(a.account_count for a in evaluated) == [1, 2, 3, 4, 5]
    assert {a.refused for a, _s in attempts if a.refused} == {"locked"}
    starts = [s for _a, s in attempts if s]  # the lock is started once, by whichever attempt got there first
    assert len(starts) == 1 and list(starts[0]) == ["locked"] and starts[0]["locked"] >= 5
    assert throttling.begin(username=username, ip=_ip()).refused == "locked"


# ASVS V6.3.1: sign-in page, lockout after N failures per account


@pytest.mark.asvs("6.3.1")
@pytest.mark.django_db
def test_the_sixth_attempt_is_refused_even_with_the_right_password_and_the_account_unlocks_later(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "lock"}}
    user = UserFactory(username=_name())
    client = Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(5):
            response = _post(client, user.username, WRONG, _ip())
            assert response.status_code == 200
            assert WRONG_MESSAGE in response.content.decode()
        response = _post(client, user.username, PASSWORD, _ip())
        assert response.status_code == 429
        assert response["Retry-After"] == "900"
        assert LOCKED_MESSAGE in response.content.decode()
        assert SESSION_KEY not in client.session

        clock.move_to(start + timedelta(seconds=899))
        assert _post(client, user.username, PASSWORD, _ip()).status_code == 429
        clock.move_to(start + timedelta(seconds=901))
        response = _post(client, user.username, PASSWORD, _ip())
        assert response.status_code == 302
        assert client.session[SESSION_KEY] == str(user.pk)


@pytest.mark.asvs("6.3.1")
@pytest.mark.django_db
def test_a_locked_unknown_username_answers_exactly_as_a_locked_existing_one():
    user = UserFactory(username=_name())
    unknown = _name()
    bodies = {}
    for username in (user.username, unknown):
        client = Client()
        for _ in range(5):
            assert _post(client, username, WRONG, _ip()).status_code == 200
        response = _post(client, username, WRONG, _ip())
        assert response.status_code == 429
        bodies[username] = response.content.decode().replace(username, "NAME")
    a, b = bodies.values()
    assert LOCKED_MESSAGE in a

    def without_csrf_tokens(body):  # the one part that differs between any two responses
        return [line for line in body.splitlines() if "csrf" not in line.lower()]

    assert without_csrf_tokens(a) == without_csrf_tokens(b)


@pytest.mark.asvs("6.3.1")
@pytest.mark.django_db
def test_a_successful_sign_in_resets_the_accounts_counter():
    user = UserFactory(username=_name())
    for _ in range(4):
        assert _post(Client(), user.username, WRONG, _ip()).status_code == 200
    assert _post(Client(), user.username, PASSWORD, _ip()).status_code == 302
    for _ in range(4):
        assert _post(Client(), user.username, WRONG, _ip()).status_code == 200
    assert _post(Client(), user.username, PASSWORD, _ip()).status_code == 302


# ASVS V6.3.1: per-address block


@pytest.mark.asvs("6.3.1")
@pytest.mark.django_db
def test_twenty_failures_from_one_address_block_it_for_every_username():
    ip = _ip()
    victim = UserFactory(username=_name())
    for _ in range(20):  # a different username each time: no account reaches its own limit
        assert _post(Client(), _name(), WRONG, ip).status_code == 200
    response = _post(Client(), victim.username, PASSWORD, ip)
    assert response.status_code == 429
    assert LOCKED_MESSAGE in response.content.decode()
    assert _post(Client(), victim.username, PASSWORD, _ip()).status_code == 302  # another address may


@pytest.mark.asvs("6.3.1")
@pytest.mark.django_db
def test_successful_sign_ins_do_not_count_against_the_address():
    ip = _ip()
    user = UserFactory(username=_name())
    for _ in range(25):
        assert _post(Client(), user.username, PASSWORD, ip).status_code == 302


# ASVS V16.3.1 (authentication events are logged): failures, lockouts and blocks are audited; no password


@pytest.mark.asvs("16.3.1")
@pytest.mark.django_db
def test_failures_lockouts_and_blocks_are_audited_with_the_username_never_the_password(caplog, settings):
    settings.LOGIN_MAX_FAILURES_PER_IP = 6
    user = UserFactory(username=_name())
    ip = _ip()
    client = Client()
    before = AuditEntry.objects.count()
    locked_before = _sample("eoms_login_lockouts_total", scope="account")
    blocked_before = _sample("eoms_login_lockouts_total", scope="ip")
    failures_before = _sample("eoms_login_failures_total")
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            _post(client, user.username, WRONG, ip)
        assert _post(client, user.username, WRONG, ip).status_code == 429  # locked (6th on the account)
        assert _post(client, _name(), WRONG, ip).status_code == 429  # blocked (7th from the address)
        assert _post(client, _name(), WRONG, ip).status_code == 429  # still blocked
    entries = list(AuditEntry.objects.order_by("id")[before:].values_list("action", "actor_id", "changes", "ip"))
    assert [(a, actor, c.get("reason")) for a, actor, c, _ip_ in entries] == [
        ("login.failed", None, "password"),
        ("login.failed", None, "password"),
        ("login.failed", None, "password"),
        ("login.failed", None, "password"),
        ("login.failed", None, "password"),
        ("login.account_locked", None, None),
        ("login.failed", None, "locked"),
        ("login.failed", None, "blocked"),
        ("login.ip_blocked", None, None),
        ("login.failed", None, "blocked"),
    ]
    assert entries[0][2] == {"username": user.username, "reason": "password"}
    assert entries[5][2] == {
        "username": user.username,
        "failures": 5,
        "limit": 5,
        "window_seconds": 900,
        "seconds": 900,
    }
    assert entries[8][2]["failures"] == 7 and entries[8][2]["limit"] == 6
    assert {e[3] for e in entries} == {ip}
    assert AuditEntry.objects.filter(actor_repr="system", action__startswith="login.").count() >= 10
    everything = "".join(str(e) for e in AuditEntry.objects.values_list()) + caplog.text
    assert WRONG not in everything
    assert _sample("eoms_login_lockouts_total", scope="account") - locked_before == 1
    assert _sample("eoms_login_lockouts_total", scope="ip") - blocked_before == 1
    assert _sample("eoms_login_failures_total") - failures_before == 8


@pytest.mark.asvs("6.3.1")
@pytest.mark.skipif(connection.vendor == "sqlite", reason="needs a server database (PostgreSQL or MariaDB)")
@pytest.mark.django_db(transaction=True)
def test_thirty_concurrent_wrong_passwords_through_the_page_lock_the_account_after_five():
    user = UserFactory(username=_name())

    def attempt(i):
        return _post(Client(), user.username, WRONG, _ip()).status_code

    statuses = race(30, attempt)
    assert sorted(statuses) == [200] * 5 + [429] * 25
    assert AuditEntry.objects.filter(action="login.failed", changes__reason="password").count() == 5
    assert AuditEntry.objects.filter(action="login.account_locked").count() == 1
    assert _post(Client(), user.username, PASSWORD, _ip()).status_code == 429


# ASVS V6.3.1 with the shared cache unreachable: sign-in neither fails nor goes unthrottled


@pytest.mark.asvs("6.3.1")
@pytest.mark.django_db
def test_with_the_shared_cache_down_sign_in_is_throttled_in_this_process(settings, caplog):
    import socket

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    user = UserFactory(username=_name())
    client, ip = Client(), _ip()
    with caplog.at_level(logging.WARNING, logger="eoms.accounts.throttling"):
        assert [_post(client, user.username, WRONG, ip).status_code for _ in range(5)] == [200] * 5
        refused = _post(client, user.username, PASSWORD, ip)
    assert refused.status_code == 429 and LOCKED_MESSAGE in refused.content.decode()
    assert "the shared cache failed (ConnectionError)" in caplog.text
    other = UserFactory(username=_name())
    signed_in = _post(Client(), other.username, PASSWORD, _ip())
    assert (signed_in.status_code, signed_in["Location"]) == (302, "/")


@pytest.mark.asvs("16.3.1")
@pytest.mark.django_db
def test_a_sign_in_and_a_sign_out_are_audited_with_the_address():
    user = UserFactory(username=_name())
    client = Client()
    ip = _ip()
    assert _post(client, user.username, PASSWORD, ip).status_code == 302
    entry = AuditEntry.objects.get(action="login.succeeded")
    assert (entry.actor_id, entry.ip, entry.object_id, entry.changes) == (
        user.pk,
        ip,
        str(user.pk),
        {"second_factor": False},
    )
    assert PASSWORD not in str(entry.changes)
    client.post("/logout/", REMOTE_ADDR=ip)
    assert AuditEntry.objects.filter(action="login.signed_out", actor=user).count() == 1
