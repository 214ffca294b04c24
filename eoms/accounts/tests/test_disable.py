"""Disabling a user ends what they hold at once: their page sessions, their personal API tokens and
their OAuth2 tokens answer as if they had none, on the very next request (issue 5)."""

import pytest
from django.test import Client

from eoms.accounts.models import User
from eoms.accounts.services import issue_api_token

pytestmark = [pytest.mark.django_db, pytest.mark.asvs("7.4.2")]


def test_a_disabled_users_session_and_token_stop_at_the_next_request(world):
    page = Client()
    page.force_login(world.pm)
    _token, secret = issue_api_token(actor=world.pm, name="bi")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert page.get("/orders/").status_code == 200
    assert page.get("/api/v1/accounts/me").status_code == 200
    assert api.get("/api/v1/accounts/me").status_code == 200

    User.objects.filter(pk=world.pm.pk).update(is_active=False)  # as the back office's checkbox does

    answer = page.get("/orders/")
    assert (answer.status_code, answer["Location"].split("?")[0]) == (302, "/login/")
    assert page.get("/api/v1/accounts/me").status_code == 401
    assert api.get("/api/v1/accounts/me").status_code == 401
    assert api.get("/api/v1/orders").status_code == 401
