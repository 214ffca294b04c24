"""The mobile H5 app's sign-in through OAuth2 in a real phone browser: the authorize link sends the user
to sign in, the consent page (our layout, under the CSP) names the app and what it may do, Allow sends
the browser back to the app with a code, and the code with its PKCE verifier buys a working token."""

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client
from playwright.sync_api import expect

from eoms.oauth.tests.conftest import REDIRECT, OAuthClients, bearer, exchange, pkce_pair

from .test_approval_inbox import PASSWORD, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.asvs("10.4.6", "10.7.1")
def test_h5_app_signs_in_with_consent_and_pkce(browser, live_server, world):
    oauth = OAuthClients(world)
    verifier, challenge = pkce_pair()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": oauth.h5_id,
            "redirect_uri": REDIRECT,
            "scope": "orders:read approvals:read",
            "state": "h5-state",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    context = browser.new_context(
        locale="en-US", base_url=live_server.url, viewport=PHONE, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(15000)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    arrived = []

    def app(route):  # the H5 app's callback page, which is not on this machine
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>H5</p>")

    page.route(re.compile(r"^https://h5\.example\.com/.*"), app)

    page.goto(f"/o/authorize/?{query}")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.fill("#id_username", world.approver.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#consent")).to_contain_text("Mobile H5 asks to use EOMS as you")
    expect(page.locator("#consent-scopes li")).to_have_text(["Read engineering orders", "Read approvals and tasks"])
    page.click("#allow")
    expect(page).to_have_url(re.compile(r"^https://h5\.example\.com/callback\?"))
    context.close()

    (url,) = arrived
    params = parse_qs(urlsplit(url).query)
    assert params["state"] == ["h5-state"]
    assert params["iss"] == ["http://localhost:8000"]  # RFC 9207
    tokens = exchange(oauth, params["code"][0], verifier).json()
    assert tokens["scope"] == "orders:read approvals:read"
    assert Client().get("/api/v1/approvals/tasks", **bearer(tokens["access_token"])).status_code == 200
    assert violations == []
