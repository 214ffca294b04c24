"""This context's part of the permission matrix, checked here so that api_matrix.py is known to be
true before the central test (eoms/core/tests/test_permission_matrix.py) runs it with everyone's."""

import json

import pytest
from django.test import Client

from eoms.core.models import AuditEntry, OutboxMessage
from eoms.testing.matrix import REQUEST_EVENTS

from .api_matrix import ENDPOINTS

IDENTITIES = ("admin", "project_manager", "approver", "field_engineer", "finance", "auditor", "outsider", "anonymous")

pytestmark = pytest.mark.django_db
CASES = [(key, identity) for key in sorted(ENDPOINTS) for identity in IDENTITIES]


def test_every_masterdata_operation_has_an_entry_and_no_more(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    ours = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/v1/masterdata/")
        for method in operations
        if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}
    }
    assert set(ENDPOINTS) == ours
    assert all(sorted(entry["expect"]) == sorted(IDENTITIES) for entry in ENDPOINTS.values())


@pytest.mark.parametrize(("key", "identity"), CASES, ids=lambda v: f"{v[0]} {v[1]}" if isinstance(v, tuple) else v)
def test_entry(world, key, identity):
    method, _template = key
    entry = ENDPOINTS[key]
    request = entry["request"](world)
    client = Client()
    if identity != "anonymous":
        client.force_login(world.by_role[identity])
    audit, outbox = AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count(), OutboxMessage.objects.count()
    if "multipart" in request:
        response = client.post(request["path"], data=request["multipart"])
    elif "json" in request:
        response = client.generic(method, request["path"], json.dumps(request["json"]), content_type="application/json")
    else:
        response = client.generic(method, request["path"])
    expected = entry["expect"][identity]
    assert response.status_code == expected, response.content[:300]
    if expected >= 400:
        assert response["Content-Type"] == "application/problem+json"
    if expected >= 400 or method == "GET":
        assert (AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count(), OutboxMessage.objects.count()) == (
            audit,
            outbox,
        )
    else:
        assert AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count() > audit
