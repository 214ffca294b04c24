"""The API permission matrix: every endpoint of the OpenAPI document × every identity.

Each context describes its endpoints in `eoms/<app>/tests/api_matrix.py`:

    # key: (METHOD, path template exactly as in the OpenAPI "paths")
    # "request": fn(world) -> {"path": concrete url, optional "json": body,
    #                          optional "multipart": dict for client.post(data=...)}
    #   targeting an object inside world.project (in scope for members, out of scope for "outsider")
    # "expect": {identity: status} for every identity of IDENTITIES
    ENDPOINTS = {("GET", "/api/v1/orders/{order_id}"): {"request": ..., "expect": {...}}, ...}

eoms/core/tests/test_permission_matrix.py loads them all, fails for an operation without an entry,
and runs every entry as every identity in a fresh world: the status must be the expected one, and a
refused request (401, 403, 404) must leave no audit entry and no outbox message behind.
"""

import importlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.http import HttpResponse
from django.test import Client

__all__ = [
    "IDENTITIES",
    "OAUTH_IDENTITIES",
    "oauth_client_for",
    "MATRIX_MODULES",
    "DENIED",
    "Matrix",
    "load_matrix",
    "openapi_operations",
    "expect",
    "perform",
    "write_counts",
    "client_for",
]

IDENTITIES = (
    "admin",
    "project_manager",
    "approver",
    "field_engineer",
    "finance",
    "auditor",
    "outsider",
    "anonymous",
)
# OAuth2 identities: a client-credentials client owned by the world's user of that role, holding a token
# with these scopes. Expected: the role's own status where the scopes cover the request, else 403
# (oauth.insufficient_scope). eoms/oauth/tests/test_scope_matrix.py runs them over a representative set.
OAUTH_IDENTITIES = {
    "oauth_pm_orders_read": ("project_manager", "orders:read"),
    "oauth_pm_orders_rw": ("project_manager", "orders:read orders:write masterdata:read"),
    "oauth_approver_approvals": ("approver", "approvals:read approvals:write"),
    "oauth_auditor_read": (
        "auditor",
        "accounts:read orders:read approvals:read masterdata:read notifications:read webhooks:read reports:read",
    ),
    "oauth_admin_all": (
        "admin",
        "accounts:read orders:read orders:write approvals:read approvals:write masterdata:read masterdata:write "
        "notifications:read notifications:write webhooks:read webhooks:write reports:read",
    ),
}
MATRIX_MODULES = (
    "eoms.orders.tests.api_matrix",
    "eoms.accounts.tests.api_matrix",
    "eoms.masterdata.tests.api_matrix",
    "eoms.approvals.tests.api_matrix",
    "eoms.notifications.tests.api_matrix",
    "eoms.webhooks.tests.api_matrix",
    "eoms.reports.tests.api_matrix",
)
API_MODULE = "eoms.api"
DENIED = frozenset({401, 403, 404})
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

Key = tuple[str, str]


@dataclass
class Matrix:
    endpoints: dict[Key, dict] = field(default_factory=dict)
    source: dict[Key, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # module -> why it could not be loaded
    duplicates: list[tuple[Key, str, str]] = field(default_factory=list)


def load_matrix(modules: Iterable[str] = MATRIX_MODULES) -> Matrix:
    """Every module's ENDPOINTS, merged. A module that is absent (or has no ENDPOINTS) is recorded in
    `missing` rather than raised, so one context's gap fails its own tests, not everyone's."""
    matrix = Matrix()
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                matrix.missing[name] = f"{name} does not exist"
                continue
            raise
        endpoints = getattr(module, "ENDPOINTS", None)
        if not isinstance(endpoints, dict):
            matrix.missing[name] = f"{name} has no ENDPOINTS dict"
            continue
        for key, entry in endpoints.items():
            if key in matrix.endpoints:
                matrix.duplicates.append((key, matrix.source[key], name))
                continue
            matrix.endpoints[key] = entry
            matrix.source[key] = name
    return matrix


def openapi_operations() -> list[Key]:
    """(METHOD, path) of every operation in the API's OpenAPI document."""
    # Found by name, as the api_matrix modules are: the harness knows every context, the contexts'
    # own code does not (import contracts).
    api = importlib.import_module(API_MODULE).api
    schema = api.get_openapi_schema()
    return sorted(
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method.upper() in METHODS
    )


def expect(ok: int, allowed: Iterable[str], *, denied: int = 403, outsider: int = 404) -> dict[str, int]:
    """Expected statuses: `ok` for the identities in `allowed`; for the others `denied` when signed
    in, `outsider` for the manager of another project (404: world.project is not in their scope)
    unless allowed, and 401 for anonymous."""
    allowed = set(allowed)
    unknown = allowed - set(IDENTITIES)
    if unknown:
        raise ValueError(f"unknown identities: {sorted(unknown)}")
    result = {}
    for identity in IDENTITIES:
        if identity in allowed:
            result[identity] = ok
        elif identity == "anonymous":
            result[identity] = 401
        elif identity == "outsider":
            result[identity] = outsider
        else:
            result[identity] = denied
    return result


def client_for(world, identity: str) -> Client:
    """A test client signed in (page session) as the world's user of that identity; anonymous: none."""
    client = Client()
    if identity != "anonymous":
        client.force_login(world.by_role[identity])
    return client


def oauth_client_for(world, identity: str) -> Client:
    """A test client sending a real access token: a client-credentials client registered for the
    identity's role user, and a token asked at the token endpoint for the identity's scopes."""
    import base64

    from oauth2_provider.models import Application

    services = importlib.import_module("eoms.oauth.services")
    role, scopes = OAUTH_IDENTITIES[identity]
    policy, secret = services.register_client(
        actor=world.admin,
        name=identity,
        grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_type=Application.CLIENT_CONFIDENTIAL,
        scopes=scopes.split(),
        owner=world.by_role[role],
    )
    basic = base64.b64encode(f"{policy.application.client_id}:{secret}".encode()).decode()
    answer = Client().post(
        "/o/token/", {"grant_type": "client_credentials", "scope": scopes}, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    if answer.status_code != 200:
        raise AssertionError(f"no token for {identity}: {answer.status_code} {answer.content[:300]!r}")
    return Client(HTTP_AUTHORIZATION=f"Bearer {answer.json()['access_token']}")


def perform(client: Client, method: str, request: dict) -> HttpResponse:
    """Send the request an entry built: JSON body, multipart form (POST only) or none."""
    path = request["path"]
    if "multipart" in request:
        if method != "POST":
            raise ValueError("multipart requests are POSTs")
        return client.post(path, data=request["multipart"])
    if "json" in request:
        return client.generic(method, path, json.dumps(request["json"]), content_type="application/json")
    return client.generic(method, path)


DENIED_ACTION = "security.access_denied"
# Entries about the request rather than a change: a refusal (core.middleware) and signing in and out
# (a test client's force_login signs in too).
REQUEST_EVENTS = (DENIED_ACTION, "login.succeeded", "login.signed_out")


def write_counts() -> dict[str, int]:
    """Rows in every table of our contexts (audit entries and outbox messages among them): what a
    refused request must not change."""
    counts = {}
    for model in apps.get_models():
        if model.__module__.startswith("eoms.") and not model._meta.proxy:
            rows = model._default_manager.all()
            if model._meta.label == "core.AuditEntry":
                # A refused request is itself audited (core.middleware), and so is signing in: those
                # entries record the request, not a change; tests of them count them on their own.
                rows = rows.exclude(action__in=REQUEST_EVENTS)
            counts[model._meta.label] = rows.count()
    return counts
