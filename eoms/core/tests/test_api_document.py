"""The OpenAPI document says what the API answers, and Ninja's own refusals come as our problems:
found by schemathesis (test_api_fuzz.py) and pinned here one by one."""

import collections

import pytest
from django.test import Client
from ninja import Schema

from eoms.accounts.services import issue_api_token
from eoms.api import api

pytestmark = pytest.mark.django_db


def test_no_two_api_schemas_share_a_name():
    # The document keys its components by class name: two classes of one name silently became one
    # (orders' ActionOut was documented with the approvals' fields).
    import eoms.api  # noqa: F401 (every router and its schemas)

    modules = collections.defaultdict(set)

    def walk(cls):
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("eoms."):
                modules[sub.__name__].add(sub.__module__)
            walk(sub)

    walk(Schema)
    assert {name: where for name, where in modules.items() if len(where) > 1} == {}


def test_every_error_answer_is_documented_as_problem_json():
    document = api.get_openapi_schema()
    operation = document["paths"]["/api/v1/orders/{order_id}/submit"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "404", "409", "422", "429"}
    for status, response in operation["responses"].items():
        if status >= "400":
            assert response["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemSchema"}}
            }
    assert set(document["components"]["schemas"]["ProblemSchema"]["required"]) == {
        "type",
        "title",
        "status",
        "detail",
        "code",
    }
    # A read without parameters needs no 422 nor 400; it still needs credentials and has limits.
    assert set(document["paths"]["/api/v1/accounts/me"]["get"]["responses"]) == {"200", "401", "429"}


def test_bodies_that_cannot_be_read_are_400_problems(world):
    _token, secret = issue_api_token(actor=world.admin, name="t")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    answer = client.post(
        "/api/v1/masterdata/customers/import", "x", content_type="multipart/form-data"
    )  # no boundary: Django cannot split it
    assert (answer.status_code, answer["Content-Type"], answer.json()["code"]) == (
        400,
        "application/problem+json",
        "invalid_body",
    )
    answer = client.put("/api/v1/notifications/preferences", "\x00", content_type="application/json")
    assert (answer.status_code, answer.json()["code"], answer.json()["title"]) == (
        400,
        "invalid_body",
        "The request body is not valid JSON",
    )


def test_a_change_through_the_session_without_its_csrf_token_is_a_403_problem(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.pm)
    answer = client.post("/api/v1/notifications/read-all")
    assert (answer.status_code, answer.json()["code"]) == (403, "csrf_failed")
    assert "X-CSRFToken" in answer.json()["detail"]


def test_quiet_hours_with_a_time_zone_are_refused_not_a_server_error(world):
    client = Client()
    client.force_login(world.pm)
    answer = client.put(
        "/api/v1/notifications/preferences",
        {"quiet_from": "22:00:00Z", "quiet_until": "07:00:00+08:00"},
        content_type="application/json",
    )
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["quiet_from", "quiet_until"]
