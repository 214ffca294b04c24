"""Client registration, secrets, deletion and the end of a disabled user's tokens."""

import json

import pytest
from django.contrib.auth.hashers import check_password
from django.test import Client
from oauth2_provider.models import AccessToken, Application, RefreshToken

from eoms.accounts.services import save_user_from_back_office
from eoms.core import relay
from eoms.core.errors import PermissionDenied
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.oauth import services
from eoms.oauth.errors import ClientInvalid
from eoms.oauth.models import ClientPolicy

from .conftest import basic, bearer, client_credentials


def test_register_stores_the_secret_hashed_and_records_the_client(world):
    AuditEntry.objects.all()  # the world made its own entries; count ours by action
    policy, secret = services.register_client(
        actor=world.admin,
        name="BI 报表",
        grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_type=Application.CLIENT_CONFIDENTIAL,
        scopes=["orders:read", "masterdata:read"],
        owner=world.finance,
    )
    app = Application.objects.get()
    assert len(secret) == 128 and app.client_secret != secret and check_password(secret, app.client_secret)
    assert (app.name, app.user_id, app.authorization_grant_type) == ("BI 报表", world.finance.pk, "client-credentials")
    assert (policy.scopes, policy.created_by_id) == ("orders:read masterdata:read", world.admin.pk)
    entry = AuditEntry.objects.get(action="oauth.client_registered")
    message = OutboxMessage.objects.get(event_type="oauth.client_registered")
    assert entry.changes == {
        "name": "BI 报表",
        "client_id": app.client_id,
        "client_type": "confidential",
        "grant_type": "client-credentials",
        "redirect_uris": "",
        "scopes": ["orders:read", "masterdata:read"],
        "owner": world.finance.username,
    }
    assert message.payload == {
        "id": str(policy.pk),
        "client_id": app.client_id,
        "grant_type": "client-credentials",
        "scopes": ["orders:read", "masterdata:read"],
    }
    assert secret not in json.dumps([entry.changes, message.payload])


def test_only_an_administrator_registers(world):
    with pytest.raises(PermissionDenied):
        services.register_client(
            actor=world.pm,
            name="x",
            grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            client_type=Application.CLIENT_CONFIDENTIAL,
            scopes=["orders:read"],
        )
    assert Application.objects.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"name": " "}, ["name"]),
        ({"scopes": []}, ["scopes"]),
        ({"scopes": ["orders:delete"]}, ["scopes"]),
        ({"client_type": "public"}, ["client_type"]),
        ({"grant_type": "password"}, ["grant_type"]),
        ({"grant_type": "authorization-code"}, ["redirect_uris"]),
        ({"grant_type": "authorization-code", "redirect_uris": "javascript:alert(1)"}, ["redirect_uris"]),
    ],
)
def test_invalid_registrations_leave_nothing(world, kwargs, fields):
    values = {
        "name": "ERP",
        "grant_type": Application.GRANT_CLIENT_CREDENTIALS,
        "client_type": Application.CLIENT_CONFIDENTIAL,
        "scopes": ["orders:read"],
        **kwargs,
    }
    with pytest.raises(ClientInvalid) as caught:
        services.register_client(actor=world.admin, **values)
    assert [e["field"] for e in caught.value.errors] == fields
    assert (Application.objects.count(), ClientPolicy.objects.count()) == (0, 0)
    assert not AuditEntry.objects.filter(action="oauth.client_registered").exists()


def test_a_new_secret_replaces_the_old_one_at_once(oauth, world):
    _, new = services.rotate_client_secret(actor=world.admin, policy_id=oauth.erp.pk)
    assert client_credentials(oauth, scope="orders:read").status_code == 401
    assert client_credentials(oauth, scope="orders:read", secret=new).status_code == 200
    assert AuditEntry.objects.get(action="oauth.client_secret_rotated").changes == {"client_secret": "(changed)"}


def test_deleting_a_client_ends_its_tokens(oauth, world):
    token = client_credentials(oauth, scope="orders:read").json()["access_token"]
    services.delete_client(actor=world.admin, policy_id=oauth.erp.pk)
    assert Client().get("/api/v1/orders", **bearer(token)).status_code == 401
    assert AccessToken.objects.count() == 0
    assert OutboxMessage.objects.filter(event_type="oauth.client_deleted").count() == 1


@pytest.mark.asvs("7.4.2")
def test_disabling_a_user_ends_their_oauth_tokens_at_once(oauth, world):
    from .test_flows import _code_tokens

    mine = _code_tokens(oauth, world)  # the approver's, through the mobile H5 client
    owned = client_credentials(oauth, scope="orders:read").json()["access_token"]  # the ERP client's, owned by pm
    world.approver.is_active = False
    save_user_from_back_office(actor=world.admin, user=world.approver, created=False, changed_fields=["is_active"])
    # At once: refused on the next request, before any event is delivered.
    assert Client().get("/api/v1/approvals/tasks", **bearer(mine["access_token"])).status_code == 401
    assert Client().get("/api/v1/orders", **bearer(owned)).status_code == 200
    # The event's handler then removes their tokens: enabled again, the old ones do not come back.
    relay.drain(relay.InProcessTransport())
    assert AccessToken.objects.filter(user=world.approver).count() == 0
    assert RefreshToken.objects.filter(user=world.approver, revoked__isnull=True).count() == 0
    assert OutboxMessage.objects.get(event_type="oauth.user_tokens_revoked").payload == {
        "id": str(world.approver.pk),
        "access_tokens": 1,
        "refresh_tokens": 1,
    }
    world.approver.is_active = True
    world.approver.save()
    assert Client().get("/api/v1/approvals/tasks", **bearer(mine["access_token"])).status_code == 401
    refreshed = Client().post(
        "/o/token/", {"grant_type": "refresh_token", "refresh_token": mine["refresh_token"], "client_id": oauth.h5_id}
    )
    assert refreshed.json()["error"] == "invalid_grant"


@pytest.mark.asvs("7.4.2")
def test_disabling_a_clients_owner_ends_the_clients_tokens(oauth, world):
    token = client_credentials(oauth, scope="orders:read").json()["access_token"]
    world.pm.is_active = False
    save_user_from_back_office(actor=world.admin, user=world.pm, created=False, changed_fields=["is_active"])
    assert Client().get("/api/v1/orders", **bearer(token)).status_code == 401
    relay.drain(relay.InProcessTransport())
    assert AccessToken.objects.count() == 0
    # Nor does the client get a new token while its owner is disabled.
    fresh = Client().post("/o/token/", {"grant_type": "client_credentials"}, **basic(oauth.erp_id, oauth.erp_secret))
    assert (fresh.status_code, fresh.json()["error"]) == (400, "unauthorized_client")
    assert AccessToken.objects.count() == 0


@pytest.mark.asvs("2.4.1")
def test_an_oauth_client_is_rate_limited_as_a_client_of_its_own(oauth, settings):
    """The rate limiter's client bucket is the OAuth2 client (request.eoms_client_id = "oauth:<id>"):
    two tokens of one client share it."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.API_RATE_WINDOW_SECONDS = 60
    settings.API_RATE_PER_IP = settings.API_RATE_PER_USER = settings.API_RATE_EXPENSIVE = 0
    settings.API_RATE_PER_CLIENT = 2
    first = client_credentials(oauth, scope="orders:read").json()["access_token"]
    second = client_credentials(oauth, scope="orders:read").json()["access_token"]
    statuses = [Client().get("/api/v1/orders", **bearer(t)).status_code for t in (first, second, second)]
    assert statuses == [200, 200, 429]
    refused = Client().get("/api/v1/orders", **bearer(first))
    assert (refused.status_code, refused.json()["bucket"]) == (429, "client")


def test_the_periodic_sweep_removes_expired_tokens_only(oauth):
    from datetime import timedelta

    from django.utils import timezone

    from eoms.core import periodic

    live = client_credentials(oauth, scope="orders:read").json()["access_token"]
    client_credentials(oauth, scope="orders:read")
    AccessToken.objects.filter(pk=AccessToken.objects.order_by("pk").last().pk).update(
        expires=timezone.now() - timedelta(seconds=1)
    )
    assert "oauth.clear_expired" in {job.name for job in periodic.jobs()}
    services.clear_expired_tokens()
    assert AccessToken.objects.count() == 1
    assert Client().get("/api/v1/orders", **bearer(live)).status_code == 200
