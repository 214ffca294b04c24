"""The client pages: administrators register a client and see its secret once; everyone else gets 403."""

import pytest
from django.contrib.auth.hashers import check_password
from django.test import Client
from oauth2_provider.models import Application

from eoms.oauth.models import ClientPolicy


def _browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.asvs("8.2.1")
@pytest.mark.parametrize("role", ["project_manager", "approver", "field_engineer", "finance", "auditor"])
def test_only_administrators_see_the_pages(world, oauth, role):
    browser = _browser(world.by_role[role])
    for path in ("/oauth/clients/", "/oauth/clients/new/", f"/oauth/clients/{oauth.erp.pk}/"):
        assert browser.get(path).status_code == 403
    assert browser.post(f"/oauth/clients/{oauth.erp.pk}/delete/").status_code == 403
    assert Application.objects.count() == 2


def test_anonymous_is_sent_to_sign_in(oauth):
    response = Client().get("/oauth/clients/")
    assert response.status_code == 302 and response["Location"].startswith("/login")


def test_register_a_client_shows_the_secret_once(world):
    browser = _browser(world.admin)
    assert browser.get("/oauth/clients/new/").status_code == 200
    response = browser.post(
        "/oauth/clients/new/",
        {
            "name": "CRM",
            "grant_type": "client-credentials",
            "client_type": "confidential",
            "scopes": ["orders:read", "masterdata:read"],
            "owner": str(world.finance.pk),
        },
    )
    assert response.status_code == 200
    app = Application.objects.get(name="CRM")
    secret = response.context["secret"]
    assert check_password(secret, app.client_secret)
    html = response.content.decode()
    assert f'value="{secret}"' in html and f'value="{app.client_id}"' in html
    policy = ClientPolicy.objects.get(application=app)
    assert policy.scopes == "orders:read masterdata:read" and app.user_id == world.finance.pk
    detail = browser.get(f"/oauth/clients/{policy.pk}/").content.decode()
    assert app.client_id in detail and secret not in detail
    assert "CRM" in browser.get("/oauth/clients/").content.decode()


def test_invalid_form_shows_errors_and_keeps_nothing(world):
    response = _browser(world.admin).post(
        "/oauth/clients/new/",
        {"name": "H5", "grant_type": "authorization-code", "client_type": "public", "scopes": ["orders:read"]},
    )
    assert response.status_code == 422
    assert "Give at least one redirect URI." in response.content.decode()
    assert Application.objects.count() == 0


def test_new_secret_and_delete(world, oauth):
    browser = _browser(world.admin)
    response = browser.post(f"/oauth/clients/{oauth.erp.pk}/secret/")
    assert response.status_code == 200
    app = Application.objects.get(pk=oauth.erp.application.pk)
    assert check_password(response.context["secret"], app.client_secret)
    assert not check_password(oauth.erp_secret, app.client_secret)
    gone = browser.post(f"/oauth/clients/{oauth.erp.pk}/delete/")
    assert gone.status_code == 302 and gone["Location"] == "/oauth/clients/"
    assert not Application.objects.filter(pk=app.pk).exists()
    assert browser.get(f"/oauth/clients/{oauth.erp.pk}/").status_code == 404


@pytest.mark.asvs("10.7.3", "10.4.9")
def test_a_user_reviews_and_withdraws_an_apps_access(world, oauth):
    from oauth2_provider.models import AccessToken, RefreshToken

    from eoms.core.models import AuditEntry

    from .conftest import bearer
    from .test_flows import _code_tokens, _refresh

    tokens = _code_tokens(oauth, world)  # the approver authorized the mobile H5 app
    browser = _browser(world.approver)
    page = browser.get("/oauth/authorized/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Mobile H5" in html and "Read engineering orders" in html and "Read approvals and tasks" in html
    assert "ERP" not in html  # a client-credentials client acts as its owner, not as the user's consent
    # Someone else has authorized nothing: the same client is not theirs to withdraw.
    other = _browser(world.engineer)
    assert "You have not authorized any app." in other.get("/oauth/authorized/").content.decode()
    assert other.post(f"/oauth/authorized/{oauth.h5.pk}/revoke/").status_code == 404
    assert AccessToken.objects.filter(user=world.approver).count() == 1

    gone = browser.post(f"/oauth/authorized/{oauth.h5.pk}/revoke/")
    assert gone.status_code == 302 and gone["Location"] == "/oauth/authorized/"
    assert Client().get("/api/v1/orders", **bearer(tokens["access_token"])).status_code == 401
    assert _refresh(oauth, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert RefreshToken.objects.filter(user=world.approver, revoked__isnull=True).count() == 0
    entry = AuditEntry.objects.get(action="oauth.authorization_revoked")
    assert (entry.actor_id, entry.changes) == (world.approver.pk, {"access_tokens": 1, "refresh_tokens": 1})
    assert "You have not authorized any app." in browser.get("/oauth/authorized/").content.decode()
