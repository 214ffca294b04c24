"""Every API operation × every identity, from the contexts' api_matrix.py files (eoms.testing.matrix).

A new endpoint without a matrix entry fails here, and so does a context whose api_matrix.py is missing.
"""

import pytest

from eoms.core.models import AuditEntry, OutboxMessage
from eoms.testing.matrix import (
    DENIED,
    IDENTITIES,
    MATRIX_MODULES,
    client_for,
    load_matrix,
    openapi_operations,
    perform,
    write_counts,
)

MATRIX = load_matrix()
OPERATIONS = openapi_operations()
CASES = [(key, identity) for key in sorted(MATRIX.endpoints) for identity in IDENTITIES]


def _id(value):
    if isinstance(value, tuple):
        return f"{value[0]} {value[1]}"
    return str(value)


@pytest.mark.parametrize("module", MATRIX_MODULES)
def test_matrix_module_exists(module):
    assert module not in MATRIX.missing, MATRIX.missing.get(module)


@pytest.mark.parametrize("operation", OPERATIONS, ids=_id)
def test_every_operation_has_an_entry(operation):
    assert operation in MATRIX.endpoints, f"{operation[0]} {operation[1]} has no entry in any api_matrix.py"


@pytest.mark.parametrize("key", sorted(MATRIX.endpoints), ids=_id)
def test_every_entry_is_a_complete_operation(key):
    entry = MATRIX.endpoints[key]
    assert key in OPERATIONS, f"{MATRIX.source[key]} describes {key}, which the OpenAPI document does not have"
    assert callable(entry["request"])
    assert sorted(entry["expect"]) == sorted(IDENTITIES)
    assert all(isinstance(status, int) and 200 <= status < 600 for status in entry["expect"].values())
    assert entry["expect"]["anonymous"] == 401, "every endpoint needs authentication"


def test_no_operation_is_described_twice():
    assert MATRIX.duplicates == []


@pytest.mark.parametrize(("key", "identity"), CASES, ids=_id)
def test_permission(world, key, identity):
    method, _ = key
    entry = MATRIX.endpoints[key]
    expected = entry["expect"][identity]
    request = entry["request"](world)
    client = client_for(world, identity)
    before = write_counts()
    response = perform(client, method, request)
    assert response.status_code == expected, (
        f"{method} {request['path']} as {identity}: {response.status_code}, expected {expected}: "
        f"{response.content[:500]!r}"
    )
    if expected >= 400:
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == expected
    if expected in DENIED or method == "GET":
        after = write_counts()
        assert after[AuditEntry._meta.label] == before[AuditEntry._meta.label]
        assert after[OutboxMessage._meta.label] == before[OutboxMessage._meta.label]
        assert after == before
