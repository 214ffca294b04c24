"""Security headers on pages, API responses and the sign-in page (eoms.core.middleware.SecurityHeadersMiddleware
and Django's SecurityMiddleware / XFrameOptionsMiddleware), and templates that the CSP lets run."""

import re
from pathlib import Path

import pytest
from django.test import Client

from eoms.core.middleware import CONTENT_SECURITY_POLICY

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _assert_security_headers(response, cache_control="no-store"):
    assert response["Content-Security-Policy"] == CSP
    assert response["Cache-Control"] == cache_control
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.asvs("3.4.3")
def test_the_policy_has_no_unsafe_script_source():
    # ASVS V3.4.3 (CSP: no inline scripts, no eval; frame-ancestors 'none')
    assert CONTENT_SECURITY_POLICY == CSP
    script_src = next(d for d in CSP.split("; ") if d.startswith("script-src"))
    assert script_src == "script-src 'self'"


@pytest.mark.asvs("3.4.3", "3.4.4", "3.4.5", "14.3.2")
@pytest.mark.django_db
def test_the_sign_in_page_carries_the_headers():
    # ASVS V3.4.3, V3.4.4 (nosniff), V3.4.5 (Referrer-Policy), V14.3.2 (no caching of sensitive pages)
    response = Client().get("/login/")
    assert response.status_code == 200
    _assert_security_headers(response, "max-age=0, no-cache, no-store, must-revalidate, private")  # never_cache


def test_a_page_carries_the_headers(world):
    client = Client()
    client.force_login(world.pm)
    response = client.get("/")
    assert response.status_code == 200
    _assert_security_headers(response)


def test_an_api_response_and_an_api_error_carry_the_headers(world):
    client = Client()
    client.force_login(world.pm)
    response = client.get("/api/v1/accounts/me")
    assert response.status_code == 200
    assert response.json()["username"] == world.pm.username
    _assert_security_headers(response)
    missing = client.get("/api/v1/no-such-endpoint")
    assert missing.status_code == 404
    _assert_security_headers(missing)


@pytest.mark.django_db
def test_a_cache_control_set_by_a_view_keeps_its_directives_and_gains_no_store():
    response = Client().get("/healthz")  # never_cache: max-age=0, no-cache, no-store, must-revalidate, private
    assert response.status_code == 200
    directives = {d.strip() for d in response["Cache-Control"].split(",")}
    assert directives == {"max-age=0", "no-cache", "no-store", "must-revalidate", "private"}
    assert response["Content-Security-Policy"] == CSP


@pytest.mark.django_db
def test_static_files_may_be_cached_and_are_not_rewritten():
    response = Client().get("/static/eoms/app.js")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
    assert response["X-Content-Type-Options"] == "nosniff"


# Templates the policy would break: an inline <script> with code, or an on…= event handler attribute.
TEMPLATES = Path(__file__).resolve().parents[2]
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


def test_no_template_has_inline_scripts_or_inline_event_handlers():
    inline_scripts, handlers = set(), set()
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        name = str(path.relative_to(TEMPLATES))
        if INLINE_SCRIPT.search(text):
            inline_scripts.add(name)
        if EVENT_HANDLER.search(text):
            handlers.add(name)
    assert inline_scripts == set()
    assert handlers == set()  # under the CSP the browser would refuse them (confirmations: data-confirm)
