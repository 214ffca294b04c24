"""Every refused authorization is an audit entry (issue 5): a role that may not act, through the API
or a page, and a change through the page session without its CSRF token. The refused work itself
left nothing (the other tests' matrix checks that); the refusal is recorded with who, from where,
what and the problem's code."""

import pytest
from django.test import Client

from eoms.accounts.services import issue_api_token
from eoms.core.audit import verify_chain
from eoms.core.models import AuditEntry
from eoms.orders.state import OrderState
from eoms.testing.matrix import DENIED_ACTION

pytestmark = [pytest.mark.django_db, pytest.mark.asvs("16.3.2")]


def denials():
    return list(AuditEntry.objects.filter(action=DENIED_ACTION).order_by("id"))


def test_a_refused_api_call_is_audited_with_its_code_and_address(world):
    order = world.order(OrderState.QUOTING)
    _token, secret = issue_api_token(actor=world.auditor, name="t")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR="203.0.113.9", HTTP_X_REQUEST_ID="req-denied-1")
    answer = client.post(
        f"/api/v1/orders/{order.pk}/submit?note=secret-query",
        {"version": order.version},
        content_type="application/json",
    )
    assert answer.status_code == 403
    [entry] = denials()
    assert (entry.actor_id, entry.ip, entry.request_id, entry.object_type, entry.object_id) == (
        world.auditor.pk,
        "203.0.113.9",
        "req-denied-1",
        "http.request",
        "req-denied-1",
    )
    assert entry.object_repr == f"POST /api/v1/orders/{order.pk}/submit"
    assert entry.changes == {
        "method": "POST",
        "path": f"/api/v1/orders/{order.pk}/submit",
        "code": answer.json()["code"],
    }
    assert "secret-query" not in str(entry.changes)
    assert verify_chain() is None


def test_a_refused_page_and_a_missing_csrf_token_are_audited(world):
    client = Client()
    client.force_login(world.pm)
    assert client.get("/dead-letters/").status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.pm)
    assert strict.post("/api/v1/notifications/read-all").status_code == 403
    assert [(e.actor_id, e.changes["method"], e.changes["path"], e.changes["code"]) for e in denials()] == [
        (world.pm.pk, "GET", "/dead-letters/", ""),
        (world.pm.pk, "POST", "/api/v1/notifications/read-all", "csrf_failed"),
    ]


def test_allowed_and_unauthenticated_requests_are_not_refusals(world):
    client = Client()
    assert client.get("/api/v1/orders").status_code == 401  # no one to refuse: sign in first
    client.force_login(world.pm)
    assert client.get("/api/v1/orders").status_code == 200
    assert denials() == []
