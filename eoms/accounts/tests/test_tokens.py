"""Personal API tokens: issued once, stored as a hash, refused when revoked, expired or the user is inactive."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from eoms.accounts import services
from eoms.accounts.errors import TokenNotFound
from eoms.accounts.models import ApiToken, User
from eoms.core.errors import ValidationFailed
from eoms.core.models import AuditEntry, OutboxMessage

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_issue_stores_only_the_hash(world):
    with time_machine.travel(T0, tick=False):
        token, secret = services.issue_api_token(actor=world.pm, name="  ERP 接口  ")
    prefix = token.prefix
    assert len(prefix) == 8 and secret.startswith(f"eoms_{prefix}_")
    assert len(secret) > 40
    token.refresh_from_db()
    assert (token.user_id, token.name, token.token_hash) == (
        world.pm.pk,
        "ERP 接口",
        hashlib.sha256(secret.encode()).hexdigest(),
    )
    assert (token.created_at, token.expires_at, token.revoked_at, token.last_used_at) == (
        T0,
        T0 + timedelta(days=90),
        None,
        None,
    )
    # The secret is nowhere in the database: not in the row, the audit entry or the event.
    stored = [str(v) for v in ApiToken.objects.values().get().values()]
    entry = AuditEntry.objects.get(action="accounts.api_token_issued")
    message = OutboxMessage.objects.get(event_type="accounts.api_token_issued")
    haystack = json.dumps([stored, entry.changes, entry.object_repr, message.payload], default=str)
    assert secret not in haystack
    assert secret.split("_", 2)[2] not in haystack
    assert entry.changes == {"name": "ERP 接口", "expires_at": "2026-06-30T08:00:00Z"}
    assert message.payload == {"id": str(token.id), "user_id": str(world.pm.pk)}


def test_every_token_is_different(world):
    secrets = {services.issue_api_token(actor=world.pm, name=f"t{i}")[1] for i in range(5)}
    assert len(secrets) == 5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "ok", "days": 0}, "days"),
        ({"name": "ok", "days": 367}, "days"),
        ({"name": "ok", "days": -5}, "days"),
    ],
)
def test_issue_refuses_bad_input(world, kwargs, field):
    with pytest.raises(ValidationFailed) as caught:
        services.issue_api_token(actor=world.pm, **kwargs)
    assert [e["field"] for e in caught.value.errors] == [field]
    assert (ApiToken.objects.count(), AuditEntry.objects.filter(object_type="accounts.apitoken").count()) == (0, 0)


def test_authenticate_records_last_use_at_most_once_a_minute(world):
    with time_machine.travel(T0, tick=False) as clock:
        token, secret = services.issue_api_token(actor=world.pm, name="bi")
        clock.shift(timedelta(minutes=5))
        assert services.authenticate_api_token(secret) == world.pm
        token.refresh_from_db()
        assert token.last_used_at == T0 + timedelta(minutes=5)
        clock.shift(timedelta(seconds=30))
        services.authenticate_api_token(secret)
        token.refresh_from_db()
        assert token.last_used_at == T0 + timedelta(minutes=5)
        clock.shift(timedelta(seconds=31))
        services.authenticate_api_token(secret)
        token.refresh_from_db()
        assert token.last_used_at == T0 + timedelta(minutes=6, seconds=1)
    # Use is not an audited change.
    assert AuditEntry.objects.filter(object_type="accounts.apitoken").count() == 1


def test_a_last_use_the_database_refuses_for_now_does_not_fail_the_request(world, caplog):
    """SQLite's shared-cache table lock refused the stamp of concurrent first uses at once ("database
    table is locked"), and the request answered 500: the stamp is information, the request goes on."""
    from unittest import mock

    from django.db import OperationalError
    from django.db.models import QuerySet

    _token, secret = services.issue_api_token(actor=world.pm, name="bi")
    with mock.patch.object(QuerySet, "update", side_effect=OperationalError("database table is locked")):
        assert services.authenticate_api_token(secret) == world.pm
        response = Client().get("/api/v1/accounts/me", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200, response.content[:300]
    assert "not recorded: database table is locked" in caplog.text
    assert services.authenticate_api_token(secret) == world.pm  # a later use stamps it
    assert ApiToken.objects.get(pk=_token.pk).last_used_at is not None


def test_expired_token_is_refused(world):
    with time_machine.travel(T0, tick=False) as clock:
        _, secret = services.issue_api_token(actor=world.pm, name="short", days=1)
        clock.shift(timedelta(days=1, seconds=-1))
        assert services.authenticate_api_token(secret) == world.pm
        clock.shift(timedelta(seconds=1))
        assert services.authenticate_api_token(secret) is None


def test_revoked_token_is_refused(world):
    token, secret = services.issue_api_token(actor=world.pm, name="bi")
    revoked = services.revoke_api_token(actor=world.pm, token_id=token.id)
    assert revoked.revoked_at is not None
    assert services.authenticate_api_token(secret) is None
    entry = AuditEntry.objects.order_by("-id").first()
    assert (entry.action, entry.object_id) == ("accounts.api_token_revoked", str(token.id))
    # Revoking again changes nothing and records nothing.
    again = services.revoke_api_token(actor=world.pm, token_id=token.id)
    assert again.revoked_at == revoked.revoked_at
    assert AuditEntry.objects.filter(object_type="accounts.apitoken").count() == 2


def test_only_the_owner_or_an_admin_revokes(world):
    token, secret = services.issue_api_token(actor=world.pm, name="bi")
    for other in (world.approver, world.auditor, world.outsider):
        with pytest.raises(TokenNotFound):
            services.revoke_api_token(actor=other, token_id=token.id)
    assert services.authenticate_api_token(secret) == world.pm
    services.revoke_api_token(actor=world.admin, token_id=token.id)
    assert services.authenticate_api_token(secret) is None


def test_inactive_users_token_is_refused(world):
    _, secret = services.issue_api_token(actor=world.pm, name="bi")
    User.objects.filter(pk=world.pm.pk).update(is_active=False)
    assert services.authenticate_api_token(secret) is None


@pytest.mark.parametrize(
    "secret",
    ["", "eoms_", "eoms_deadbeef_notreal", "Bearer", "x" * 200, "eoms_' OR 1=1 --", "ｅｏｍｓ_全角"],
)
def test_malformed_token_is_refused(world, secret):
    services.issue_api_token(actor=world.pm, name="bi")
    assert services.authenticate_api_token(secret) is None


# Through the API ---------------------------------------------------------------------------------


def test_bearer_token_authenticates_api_calls(world):
    _, secret = services.issue_api_token(actor=world.pm, name="bi")
    response = Client().get("/api/v1/accounts/me", **bearer(secret))
    assert response.status_code == 200
    assert response.json() == {
        "id": str(world.pm.id),
        "username": "pm1",
        "display_name": world.pm.display_name,
        "email": "pm1@example.com",
        "roles": ["project_manager"],
        "org_unit": None,
    }


def _refused(response):
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == 'Bearer realm="eoms"'
    assert response.json()["code"] == "unauthenticated"


def test_refused_tokens_answer_401(world):
    client = Client()
    revoked, revoked_secret = services.issue_api_token(actor=world.pm, name="revoked")
    services.revoke_api_token(actor=world.pm, token_id=revoked.id)
    _, inactive_secret = services.issue_api_token(actor=world.finance, name="inactive")
    User.objects.filter(pk=world.finance.pk).update(is_active=False)
    with time_machine.travel(T0, tick=False):
        _, expired_secret = services.issue_api_token(actor=world.approver, name="expired", days=1)
    before = (AuditEntry.objects.count(), OutboxMessage.objects.count())
    for secret in (revoked_secret, inactive_secret, expired_secret, "eoms_deadbeef_forged"):
        _refused(client.get("/api/v1/orders", **bearer(secret)))
        _refused(
            client.post("/api/v1/accounts/tokens", {"name": "x"}, content_type="application/json", **bearer(secret))
        )
    for header in ("Bearer", "Basic dXNlcjpwYXNz", "Token abc", "bearer", f"Bearer {revoked_secret} extra"):
        _refused(client.get("/api/v1/accounts/me", HTTP_AUTHORIZATION=header))
    _refused(client.get("/api/v1/accounts/me"))
    assert (AuditEntry.objects.count(), OutboxMessage.objects.count()) == before


def test_token_endpoints_never_show_a_secret_twice(world):
    client = Client()
    client.force_login(world.pm)
    created = client.post("/api/v1/accounts/tokens", {"name": "BI 报表", "days": 30}, content_type="application/json")
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at", "token"}
    assert body["token"].startswith(f"eoms_{body['prefix']}_")
    services.issue_api_token(actor=world.finance, name="someone else's")
    listed = client.get("/api/v1/accounts/tokens", **bearer(body["token"]))
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json()] == ["BI 报表"]
    assert "token" not in listed.json()[0] and "token_hash" not in listed.json()[0]
    deleted = client.delete(f"/api/v1/accounts/tokens/{body['id']}")
    assert deleted.status_code == 204
    assert Client().get("/api/v1/accounts/me", **bearer(body["token"])).status_code == 401
