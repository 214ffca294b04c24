"""The quotation's estimated cost and the gross margin derived from it: the model's rounding, the
services' checks and audit, the API's input and output, and the order pages."""

import json
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from eoms.accounts.services import issue_api_token
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.orders import services
from eoms.orders.errors import OrderValidationFailed
from eoms.orders.models import Order
from eoms.orders.state import OrderState

S = OrderState
BASE = "/api/v1/orders"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def create(world, amount="1000000.00", **kwargs) -> Order:
    return services.create_order(
        actor=world.pm, project=world.project, title="滨江大道排水管网改造", contract_amount=Decimal(amount), **kwargs
    )


def last_audit() -> AuditEntry:
    return AuditEntry.objects.order_by("-id").first()


def counts() -> tuple[int, int, int]:
    return Order.objects.count(), AuditEntry.objects.count(), OutboxMessage.objects.count()


# The derived margin -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "cost", "margin"),
    [
        ("1000000.00", "815000.00", Decimal("18.50")),
        ("1000000.00", "920000.00", Decimal("8.00")),
        ("1000000.00", "1000000.00", Decimal("0.00")),
        ("1000000.00", "0.00", Decimal("100.00")),
        ("1000000.00", "1100000.00", Decimal("-10.00")),
        ("300.00", "200.00", Decimal("33.33")),  # 33.333… rounds down
        ("300.00", "199.99", Decimal("33.34")),  # 33.3366… rounds up
        ("800.00", "699.96", Decimal("12.51")),  # 12.505 exactly: half up
        ("1000000.00", None, None),
        ("0.00", "10.00", None),  # no amount, no margin (never stored: amounts are > 0)
    ],
)
def test_margin_is_a_percentage_rounded_half_up_and_none_without_a_cost(amount, cost, margin):
    order = Order(contract_amount=Decimal(amount), estimated_cost=None if cost is None else Decimal(cost))
    assert order.margin == margin
    if margin is not None:
        assert order.margin.as_tuple().exponent == -2


# Services ----------------------------------------------------------------------------------------


def test_create_with_an_estimated_cost_stores_and_audits_it(world):
    order = create(world, estimated_cost="850000")
    order.refresh_from_db()
    assert (order.estimated_cost, order.margin) == (Decimal("850000.00"), Decimal("15.00"))
    entry = last_audit()
    assert entry.action == "orders.order_created"
    assert (entry.changes["contract_amount"], entry.changes["estimated_cost"]) == ("1000000.00", "850000.00")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "Enter a cost in yuan, e.g. 1050000.00."),
        ([1], "Enter a cost in yuan, e.g. 1050000.00."),
        ("NaN", "The estimated cost may not be negative."),
        ("Infinity", "The estimated cost may not be negative."),
        ("-0.01", "The estimated cost may not be negative."),
        ("10000000000.00", "The estimated cost may not exceed 9,999,999,999.99."),
        ("1e30", "The estimated cost may not exceed 9,999,999,999.99."),
        ("100.001", "Amounts have at most two decimal places."),
    ],
)
def test_create_refuses_a_bad_estimated_cost_with_its_field(world, value, message):
    before = counts()
    with pytest.raises(OrderValidationFailed) as caught:
        create(world, estimated_cost=value)
    assert caught.value.status == 422
    assert caught.value.errors == [{"field": "estimated_cost", "message": message}]
    assert counts() == before


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("9999999999.99", Decimal("9999999999.99")),
        ("0", Decimal("0.00")),
        ("-0", Decimal("0.00")),
        (" 1250.5 ", Decimal("1250.50")),
        (Decimal("42"), Decimal("42.00")),
        ("", None),
        (None, None),
    ],
)
def test_create_accepts_costs_from_zero_to_the_largest_amount_and_blank_as_none(world, value, stored):
    order = create(world, estimated_cost=value)
    order.refresh_from_db()
    assert order.estimated_cost == stored
    if stored == 0:
        assert str(order.estimated_cost) == "0.00"  # not "-0.00"


def test_update_sets_changes_and_clears_the_cost_each_audited_with_its_diff(world):
    order = world.order(S.QUOTING)
    version = order.version
    updated = services.update_order(actor=world.pm, order_id=order.id, changes={"estimated_cost": "920000.00"})
    assert (updated.estimated_cost, updated.margin, updated.version) == (
        Decimal("920000.00"),
        Decimal("8.00"),
        version + 1,
    )
    entry = last_audit()
    assert (entry.action, entry.object_id, entry.changes) == (
        "orders.order_updated",
        str(order.id),
        {"estimated_cost": [None, "920000.00"]},
    )
    message = OutboxMessage.objects.order_by("-id").first()
    assert (message.event_type, message.payload["fields"]) == ("orders.order_updated", ["estimated_cost"])

    services.update_order(actor=world.pm, order_id=order.id, changes={"estimated_cost": "800000"})
    assert last_audit().changes == {"estimated_cost": ["920000.00", "800000.00"]}
    cleared = services.update_order(actor=world.pm, order_id=order.id, changes={"estimated_cost": None})
    assert (cleared.estimated_cost, cleared.margin, cleared.version) == (None, None, version + 3)
    assert last_audit().changes == {"estimated_cost": ["800000.00", None]}

    # The same value again writes nothing.
    before = counts()
    same = services.update_order(actor=world.pm, order_id=order.id, changes={"estimated_cost": None})
    assert (same.version, counts()) == (version + 3, before)


def test_update_refuses_a_bad_cost_and_writes_nothing(world):
    order = world.order(S.INITIATED)
    before = counts()
    with pytest.raises(OrderValidationFailed) as caught:
        services.update_order(actor=world.pm, order_id=order.id, changes={"estimated_cost": "-5"})
    assert caught.value.errors == [{"field": "estimated_cost", "message": "The estimated cost may not be negative."}]
    assert counts() == before


@pytest.mark.parametrize("state", [S.PENDING_APPROVAL, S.APPROVED, S.SIGNED])
def test_the_cost_freezes_with_the_amount_once_submitted(world, state):
    order = world.order(state)
    with pytest.raises(OrderValidationFailed) as caught:
        services.update_order(actor=world.pm, order_id=order.id, changes={"estimated_cost": "1.00"})
    assert caught.value.errors == [{"field": "estimated_cost", "message": f"Not editable in state {state}."}]


def test_an_approver_whose_node_allows_it_edits_the_cost_audited(world):
    order = world.order(S.PENDING_APPROVAL)
    diff = services.update_order_by_approver(
        actor=world.approver, order_id=order.id, changes={"estimated_cost": "870000"}, allowed={"estimated_cost"}
    )
    assert diff == {"estimated_cost": [None, "870000.00"]}
    order.refresh_from_db()
    assert (order.estimated_cost, order.margin) == (Decimal("870000.00"), Decimal("13.00"))
    entry = last_audit()
    assert (entry.action, entry.actor_id, entry.changes) == ("orders.order_updated", world.approver.pk, diff)
    with pytest.raises(OrderValidationFailed) as caught:
        services.update_order_by_approver(
            actor=world.approver, order_id=order.id, changes={"estimated_cost": "x"}, allowed={"estimated_cost"}
        )
    assert caught.value.errors == [{"field": "estimated_cost", "message": "Enter a cost in yuan, e.g. 1050000.00."}]
    with pytest.raises(OrderValidationFailed) as caught:
        services.update_order_by_approver(
            actor=world.approver, order_id=order.id, changes={"estimated_cost": "1"}, allowed={"title"}
        )
    assert caught.value.errors == [{"field": "estimated_cost", "message": "Not editable at this approval node."}]


# API ---------------------------------------------------------------------------------------------


class Api:
    def __init__(self, user):
        self.client = Client()
        self.meta = {"HTTP_AUTHORIZATION": f"Bearer {issue_api_token(actor=user, name='test')[1]}"}

    def get(self, path):
        return self.client.get(path, **self.meta)

    def post(self, path, body):
        return self.client.post(path, json.dumps(body), "application/json", **self.meta)

    def patch(self, path, body):
        return self.client.patch(path, json.dumps(body), "application/json", **self.meta)


def problem_fields(response, status: int, code: str) -> list[str]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    return [e["field"] for e in body["errors"]]


def test_api_creates_with_a_cost_and_answers_it_with_the_margin(world):
    api = Api(world.pm)
    body = {"project_id": str(world.project.id), "title": "管网", "contract_amount": "1250000.00"}
    response = api.post(BASE, {**body, "estimated_cost": "1056250.00"})
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["contract_amount"], created["estimated_cost"], created["margin"]) == (
        "1250000.00",
        "1056250.00",
        "15.50",
    )
    assert Order.objects.get(pk=created["id"]).estimated_cost == Decimal("1056250.00")
    without = api.post(BASE, {**body, "title": "无成本"}).json()
    assert (without["estimated_cost"], without["margin"]) == (None, None)
    listed = {o["id"]: (o["estimated_cost"], o["margin"]) for o in api.get(BASE).json()["results"]}
    assert listed == {created["id"]: ("1056250.00", "15.50"), without["id"]: (None, None)}


def test_api_updates_and_clears_the_cost(world):
    api = Api(world.pm)
    order = world.order(S.QUOTING)
    url = f"{BASE}/{order.id}"
    body = api.patch(url, {"version": order.version, "estimated_cost": "930000"}).json()
    assert (body["estimated_cost"], body["margin"], body["version"]) == ("930000.00", "7.00", order.version + 1)
    assert "estimated_cost" in body["editable_fields"]
    body = api.patch(url, {"estimated_cost": None}).json()
    assert (body["estimated_cost"], body["margin"]) == (None, None)
    assert last_audit().changes == {"estimated_cost": ["930000.00", None]}
    submitted = world.order(S.PENDING_APPROVAL)
    assert problem_fields(
        api.patch(f"{BASE}/{submitted.id}", {"estimated_cost": "1.00"}), 422, "order.validation_failed"
    ) == ["estimated_cost"]


@pytest.mark.parametrize(
    "value",
    ["abc", [1], "NaN", "Infinity", "-1.00", "10000000000.00", "100.001", 1e30],
)
def test_api_refuses_a_bad_cost_with_a_field_error(world, value):
    api = Api(world.pm)
    order = world.order(S.QUOTING)
    before = counts()
    body = {"project_id": str(world.project.id), "title": "管网", "contract_amount": "1000.00", "estimated_cost": value}
    assert problem_fields(api.post(BASE, body), 422, "validation_failed") == ["estimated_cost"]
    assert problem_fields(api.patch(f"{BASE}/{order.id}", {"estimated_cost": value}), 422, "validation_failed") == [
        "estimated_cost"
    ]
    assert counts() == before


# Pages -------------------------------------------------------------------------------------------


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        client.force_login(user)
        return client

    return make


def test_create_page_takes_an_estimated_cost(world, client_for):
    client = client_for(world.pm)
    form = client.get(reverse("orders:create")).context["form"]
    assert list(form.fields)[:6] == ["project", "parent", "title", "kind", "contract_amount", "estimated_cost"]
    data = {
        "project": str(world.project.id),
        "title": "Pump station",
        "kind": "installation",
        "contract_amount": "1,250,000",
        "tax_rate": "0.09",
    }
    response = client.post(reverse("orders:create"), {**data, "estimated_cost": "¥1,000,000.00"})
    assert response.status_code == 302
    order = Order.objects.get(title="Pump station")
    assert (order.estimated_cost, order.margin) == (Decimal("1000000.00"), Decimal("20.00"))
    blank = client.post(reverse("orders:create"), {**data, "title": "No cost", "estimated_cost": ""})
    assert blank.status_code == 302
    assert Order.objects.get(title="No cost").estimated_cost is None
    bad = client.post(reverse("orders:create"), {**data, "title": "Bad", "estimated_cost": "-1"})
    assert bad.status_code == 422
    assert set(bad.context["form"].errors) == {"estimated_cost"}
    assert not Order.objects.filter(title="Bad").exists()


def test_edit_page_changes_and_clears_the_cost(world, client_for):
    order = world.order(S.QUOTING)
    services.update_order(actor=world.pm, order_id=order.id, changes={"estimated_cost": "900000"})
    order.refresh_from_db()
    client = client_for(world.pm)
    form = client.get(reverse("orders:edit", args=[order.id])).context["form"]
    assert form.initial["estimated_cost"] == Decimal("900000.00")
    data = {
        "version": order.version,
        "title": order.title,
        "kind": order.kind,
        "contract_amount": "1000000.00",
        "tax_rate": "0.09",
        "stage_owner": str(world.pm.id),
        "description": "",
    }
    response = client.post(reverse("orders:edit", args=[order.id]), {**data, "estimated_cost": "950000"})
    assert response.status_code == 302
    assert last_audit().changes["estimated_cost"] == ["900000.00", "950000.00"]
    order.refresh_from_db()
    response = client.post(
        reverse("orders:edit", args=[order.id]), {**data, "version": order.version, "estimated_cost": ""}
    )
    assert response.status_code == 302
    assert Order.objects.get(pk=order.pk).estimated_cost is None


def test_detail_page_shows_cost_and_margin_as_a_percentage(world, client_for):
    order = world.order(S.QUOTING, amount="1234567.00")
    client = client_for(world.pm)
    html = client.get(reverse("orders:detail", args=[order.id])).content.decode()
    assert '<div class="datagrid-content money text-start" id="estimated-cost">—</div>' in html
    assert '<div class="datagrid-content" id="margin">—</div>' in html
    services.update_order(actor=world.pm, order_id=order.id, changes={"estimated_cost": "1006172.11"})
    html = client.get(reverse("orders:detail", args=[order.id])).content.decode()
    assert '<div class="datagrid-content money text-start" id="estimated-cost">¥1,006,172.11</div>' in html
    assert '<div class="datagrid-content" id="margin">18.50%</div>' in html
    services.update_order(actor=world.pm, order_id=order.id, changes={"estimated_cost": "1300000"})
    html = client.get(reverse("orders:detail", args=[order.id])).content.decode()
    assert '<div class="datagrid-content text-red" id="margin">-5.30%</div>' in html
