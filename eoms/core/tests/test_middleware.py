"""Request id and client address: taken from the request, echoed, and written into the audit trail."""

import re

import pytest
from django.test import Client

from eoms.core.audit import verify_chain
from eoms.core.context import RequestInfo, current_request
from eoms.core.models import AuditEntry, OutboxMessage

HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def client(world):
    c = Client()
    c.force_login(world.pm)
    return c


def issue_token(client, **meta):
    response = client.post("/api/v1/accounts/tokens", {"name": "ci"}, content_type="application/json", **meta)
    assert response.status_code == 201, response.content
    entry = AuditEntry.objects.order_by("-id").first()
    assert entry.action == "accounts.api_token_issued"
    return response, entry


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        # No trusted proxies: the header is anyone's to write and is ignored.
        ([], "203.0.113.5", "198.51.100.1", "203.0.113.5"),
        ([], "10.1.2.3", "198.51.100.1", "10.1.2.3"),
        # From a trusted proxy: the right-most address that is not itself a trusted proxy.
        (["10.0.0.0/8"], "10.1.2.3", "198.51.100.1", "198.51.100.1"),
        (["10.0.0.0/8"], "10.1.2.3", "6.6.6.6, 198.51.100.1, 10.0.0.7", "198.51.100.1"),
        (["127.0.0.1", "10.0.0.0/8"], "127.0.0.1", "198.51.100.1,10.9.9.9", "198.51.100.1"),
        # A peer that is not a trusted proxy cannot choose its address.
        (["10.0.0.0/8"], "203.0.113.5", "198.51.100.1", "203.0.113.5"),
        # Garbage or only proxies in the header: the peer's address.
        (["10.0.0.0/8"], "10.1.2.3", "unknown", "10.1.2.3"),
        (["10.0.0.0/8"], "10.1.2.3", "198.51.100.1, not-an-ip", "10.1.2.3"),
        (["10.0.0.0/8"], "10.1.2.3", "10.0.0.9", "10.1.2.3"),
        (["10.0.0.0/8"], "10.1.2.3", "", "10.1.2.3"),
        (["not a network", "10.0.0.0/8"], "10.1.2.3", "198.51.100.1", "198.51.100.1"),
        (["2001:db8::/32"], "2001:db8::10", "2001:DB9:0::1, 2001:db8::11", "2001:db9::1"),
    ],
)
def test_client_address(client, settings, trusted, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = trusted
    meta = {"REMOTE_ADDR": remote}
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    _, entry = issue_token(client, **meta)
    assert entry.ip == expected
    assert verify_chain() is None


def test_request_id_is_echoed_and_recorded(client):
    response, entry = issue_token(client, HTTP_X_REQUEST_ID="gateway-7f3a9c01")
    assert response["X-Request-ID"] == "gateway-7f3a9c01"
    assert entry.request_id == "gateway-7f3a9c01"
    assert OutboxMessage.objects.order_by("-id").first().request_id == "gateway-7f3a9c01"


@pytest.mark.parametrize(
    "incoming", [None, "short", "has spaces in it", "x" * 65, "semi;colon-123456", "中文请求编号abcdefgh"]
)
def test_unusable_request_id_is_replaced(client, incoming):
    meta = {"HTTP_X_REQUEST_ID": incoming} if incoming is not None else {}
    response, entry = issue_token(client, **meta)
    assert HEX32.match(response["X-Request-ID"])
    assert entry.request_id == response["X-Request-ID"]


def test_every_response_carries_a_fresh_request_id(db):
    anonymous = Client()
    first = anonymous.get("/api/v1/orders")
    second = anonymous.get("/api/v1/orders")
    assert (first.status_code, second.status_code) == (401, 401)
    assert HEX32.match(first["X-Request-ID"]) and HEX32.match(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_request_context_ends_with_the_request(client):
    issue_token(client, HTTP_X_REQUEST_ID="gateway-7f3a9c02", REMOTE_ADDR="198.51.100.4")
    assert current_request() == RequestInfo()
