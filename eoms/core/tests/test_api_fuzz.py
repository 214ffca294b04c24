"""schemathesis against the OpenAPI document, in process (WSGI), as several identities (issue 5).

Every operation of /api/v1/openapi.json gets examples, coverage and fuzzed cases generated from its
own schema and is called with a personal API token of the identity. Checked on every answer: no
server error, the status and the content type are documented, the body conforms to the documented
schema, and an operation that declares authentication refuses a request without it
(schemathesis's `ignored_auth`, which repeats the call without the token).

Object-level authorization: schemathesis's own check needs objects created through the API by each
peer; here each operation is also called by a project manager of another project (the matrix's
"outsider") with the ids of real objects of the world's project in its path (an order, its task and
approval instance, its attachment, the project). The answer must never be a success: the objects of a
project outside one's scope do not exist for the caller (404) or are refused (403).
"""

import json
import re

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from eoms.accounts.services import issue_api_token
from eoms.api import api
from eoms.approvals.models import ApprovalTask
from eoms.orders.state import OrderState

pytestmark = [pytest.mark.django_db, pytest.mark.fuzz, pytest.mark.asvs("4.1.1", "8.2.2", "8.3.1")]

IDENTITIES = ("admin", "project_manager", "auditor")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]
EXAMPLES = 3


def _load_schema():
    # The document as /api/v1/openapi.json serves it (no database needed to build it), and the
    # application to call in process.
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(api.get_openapi_schema(), cls=DjangoJSONEncoder)))
    schema.app = get_wsgi_application()
    return schema


schema = _load_schema()


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    # Hundreds of calls a minute by one token are the point here, not abuse.
    settings.API_RATE_PER_IP = settings.API_RATE_PER_USER = settings.API_RATE_PER_CLIENT = 0
    settings.API_RATE_EXPENSIVE = 0


@pytest.fixture
def tokens(world) -> dict[str, dict[str, str]]:
    return {identity: bearer(world, identity) for identity in IDENTITIES}


def bearer(world, identity: str) -> dict[str, str]:
    _token, secret = issue_api_token(actor=world.by_role[identity], name="schemathesis")
    return {"Authorization": f"Bearer {secret}"}


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, tokens):
    for headers in tokens.values():
        case.call_and_validate(headers=headers, checks=CHECKS)


@pytest.fixture
def world_ids(world) -> dict[str, str]:
    """Ids of real objects of the world's project, by the path parameter names of the API."""
    pending = world.order(OrderState.PENDING_APPROVAL)
    signed = world.order(OrderState.SIGNED)  # has its signed contract attached
    task = ApprovalTask.objects.filter(instance__subject_id=str(pending.pk)).first()
    return {
        "order_id": str(pending.pk),
        "project_id": str(world.project.pk),
        "task_id": str(task.pk),
        "instance_id": str(task.instance_id),
        "attachment_id": str(signed.attachments.first().pk),
    }


@schema.parametrize()
@hypothesis_settings(
    max_examples=1,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_object_of_another_project_is_reachable(case, world, world_ids):
    names = set(re.findall(r"{(\w+)}", case.path))
    if not names or not names <= set(world_ids):
        pytest.skip("no object of a project in this operation's path")
    case.path_parameters = {name: world_ids[name] for name in names}
    response = case.call(headers=bearer(world, "outsider"))
    assert response.status_code in (400, 403, 404, 409, 422), (
        f"{case.method} {case.formatted_path} as a manager of another project: {response.status_code} "
        f"{response.text[:300]}"
    )
