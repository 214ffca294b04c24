"""Keyset (cursor) pagination of the orders list: every ordering walks every row once, new orders do
not shift the pages, a cursor not made here answers 400 problem+json, and the scope still applies;
on PostgreSQL the filtered list's query uses an index."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from eoms.orders import selectors, services
from eoms.orders.models import Order
from eoms.orders.selectors import OrderFilters
from eoms.orders.state import OrderState

from .test_api import BASE, Api, assert_problem

S = OrderState
T0 = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
ORDERINGS = ["-created", "created", "amount", "-amount", "deadline", "-deadline", "number", "-number", "updated"]


@pytest.fixture
def many(world):
    """Eleven orders of world.project: pairs made at the same instant, repeated amounts, and three
    cancelled (no stage deadline: nulls in the "deadline" ordering); one order elsewhere."""
    states = [S.INITIATED, S.QUOTING, S.CANCELLED, S.INITIATED, S.APPROVED, S.CANCELLED]
    with time_machine.travel(T0, tick=False) as clock:
        for i in range(11):
            world.order(states[i % len(states)], amount=("500.00", "700.00", "500.00")[i % 3], title=f"订单 {i}")
            if i % 2:
                clock.shift(timedelta(minutes=1))
        services.create_order(
            actor=world.admin, project=world.other_project, title="别的项目", contract_amount=Decimal("10.00")
        )


def walk(api, params, page_size=2):
    """Every page from an empty cursor on: the numbers in order, and the number of requests."""
    seen, cursor, requests = [], "", 0
    while cursor is not None:
        response = api.get(BASE, {**params, "cursor": cursor, "page_size": page_size})
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["count"], body["page"], body["page_size"]) == (None, None, page_size)
        seen += [o["number"] for o in body["results"]]
        cursor = body["next_cursor"]
        requests += 1
    return seen, requests


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_keyset_pages_follow_the_ordering_without_repeats_or_gaps(world, many, ordering):
    pm = Api(world.pm)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        everything = pm.get(BASE, {"ordering": ordering, "page_size": 200}).json()
        seen, requests = walk(pm, {"ordering": ordering})
    assert everything["count"] == 11
    assert seen == [o["number"] for o in everything["results"]]
    assert requests == 6  # 5 full pages and the last one with one order


def test_deadline_ordering(world, many):
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        rows = Api(world.pm).get(BASE, {"ordering": "-deadline", "page_size": 200}).json()["results"]
    deadlines = [o["stage_deadline"] for o in rows]
    dated = [d for d in deadlines if d is not None]
    assert deadlines == sorted(dated, reverse=True) + [None] * (len(deadlines) - len(dated))
    assert len(dated) == 8  # the three cancelled orders have none


def test_pages_are_stable_under_inserts(world, many):
    pm = Api(world.pm)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False) as clock:
        before = [o["number"] for o in pm.get(BASE, {"page_size": 200}).json()["results"]]
        first = pm.get(BASE, {"cursor": "", "page_size": 4}).json()
        # Newer orders sort before the cursor in "-created": the following pages are not shifted.
        for i in range(3):
            clock.shift(timedelta(seconds=1))
            world.order(title=f"新订单 {i}")
        rest, _ = walk(pm, {}, page_size=4)
        cursor, after_first = first["next_cursor"], []
        while cursor:
            body = pm.get(BASE, {"cursor": cursor, "page_size": 4}).json()
            after_first += [o["number"] for o in body["results"]]
            cursor = body["next_cursor"]
    assert [o["number"] for o in first["results"]] + after_first == before
    assert len(rest) == 14 and set(before) < set(rest)


def test_page_mode_also_gives_a_cursor(world, many):
    pm = Api(world.pm)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        page = pm.get(BASE, {"ordering": "number", "page_size": 5}).json()
        following = pm.get(BASE, {"ordering": "number", "page_size": 5, "cursor": page["next_cursor"]}).json()
        second = pm.get(BASE, {"ordering": "number", "page_size": 5, "page": 2}).json()
        last = pm.get(BASE, {"ordering": "number", "page_size": 5, "page": 3}).json()
    assert (page["count"], page["page"]) == (11, 1)
    assert following["results"] == second["results"]
    assert (len(last["results"]), last["next_cursor"]) == (1, None)


def test_keyset_pages_with_filters_and_scope(world, many):
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        cancelled, _ = walk(Api(world.pm), {"state": "CANCELLED", "amount_min": "500", "amount_max": "600"})
        outsider, _ = walk(Api(world.outsider), {})
        everyone, _ = walk(Api(world.admin), {}, page_size=5)
    assert cancelled == list(
        Order.objects.filter(state="CANCELLED", contract_amount=Decimal("500.00"))
        .order_by("-created_at", "-id")
        .values_list("number", flat=True)
    )
    assert len(cancelled) == 3
    assert outsider == list(Order.objects.filter(project=world.other_project).values_list("number", flat=True))
    assert len(everyone) == 12


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "W10:1abc:xyz", "eyJhIjoxfQ:1kXyZz:" + "A" * 43],
)
def test_a_cursor_not_made_here_answers_400(world, many, cursor):
    body = assert_problem(Api(world.pm).get(BASE, {"cursor": cursor}), 400, "order.invalid_cursor")
    assert body["detail"] == "This cursor is not valid: start again from the first page."


def test_a_cursor_for_another_ordering_answers_400(world, many):
    pm = Api(world.pm)
    cursor = pm.get(BASE, {"ordering": "amount", "page_size": 2, "cursor": ""}).json()["next_cursor"]
    body = assert_problem(pm.get(BASE, {"ordering": "number", "cursor": cursor}), 400, "order.invalid_cursor")
    assert body["detail"] == "This cursor was made for ordering amount, not number."
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    assert_problem(pm.get(BASE, {"ordering": "amount", "cursor": tampered}), 400, "order.invalid_cursor")


@pytest.fixture
def ten_thousand(world):
    """10,000 orders written in one statement (not through the services: only the plan matters), in
    two projects, six states, three regions and the six types, then ANALYZEd."""
    projects = [world.project, world.other_project]
    states = [S.INITIATED, S.QUOTING, S.APPROVED, S.IN_EXECUTION, S.SETTLED, S.CANCELLED]
    kinds = ["construction", "installation", "design", "procurement", "consulting", "maintenance"]
    Order.objects.bulk_create(
        [
            Order(
                number=f"EXPLAIN-{i:06d}",
                title="计划",
                project=projects[i % 2],
                customer_id=projects[i % 2].customer_id,
                kind=kinds[i % 6],
                region=("east", "north", "south")[i % 3],
                contract_amount=Decimal(1000 + i),
                state=states[(i // 7) % 6],
                created_by=world.pm,
                updated_by=world.pm,
            )
            for i in range(10_000)
        ],
        batch_size=2000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order")


def _plan(qs) -> str:
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


FULL_SORT = re.compile(r"(?<!Incremental )Sort  \(")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN plans are PostgreSQL's")
@pytest.mark.parametrize(
    "filters",
    [
        OrderFilters(),
        OrderFilters(ordering="created"),
        OrderFilters(state=["IN_EXECUTION"]),
        OrderFilters(region="east", kind="design"),
        OrderFilters(ordering="-amount", amount_min=Decimal("5000")),
        OrderFilters(ordering="-updated"),
        OrderFilters(created_from=datetime(2026, 6, 1).date()),
    ],
)
def test_the_filtered_list_is_read_from_an_index_on_postgresql(world, ten_thousand, filters):
    """A page of the list (51 rows: a page and the look-ahead) is read in order from an index of the
    orders (ties of the sort value may be put in id order as they come: Incremental Sort), not sorted
    after a scan of the table."""
    plan = _plan(selectors.list_orders(actor=world.admin, filters=filters)[:51])
    assert re.search(r"Index Scan (Backward )?using \S+ on orders_order ", plan), plan
    assert not FULL_SORT.search(plan) and "Seq Scan on orders_order" not in plan, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN plans are PostgreSQL's")
def test_a_keyset_page_starts_in_the_index_at_the_cursor(world, ten_thousand):
    admin = Api(world.admin)
    cursor = admin.get(BASE, {"cursor": "", "page_size": 50, "state": "APPROVED"}).json()["next_cursor"]
    qs = selectors.list_orders(actor=world.admin, filters=OrderFilters(state=["APPROVED"]))
    plan = _plan(selectors.after_cursor(qs, "-created", cursor)[:51])
    assert not FULL_SORT.search(plan) and "Seq Scan on orders_order" not in plan, plan
    assert re.search(r"Index Cond: \(.*created_at <= ", plan), plan


def test_list_rows_are_rendered_as_the_schema_would(world, many):
    """The list renders its rows without validating them against OrderPage again: the result must be
    what the validated schema gives for the same orders (as the detail renders them)."""
    import json

    from ninja.responses import NinjaJSONEncoder

    from eoms.orders.api import OrderOut, order_out

    world.update(Order.objects.order_by("created_at").first(), estimated_cost=Decimal("300.00"))
    with time_machine.travel(T0 + timedelta(days=30), tick=False):  # some overdue
        rows = Api(world.pm).get(BASE, {"page_size": 200}).json()["results"]
        expected = [
            json.loads(json.dumps(OrderOut.model_validate(order_out(o)).model_dump(), cls=NinjaJSONEncoder))
            for o in Order.objects.filter(project=world.project).order_by("-created_at", "-id")
        ]
    assert rows == expected
    assert {r["overdue"] for r in rows} == {True, False}
    assert any(r["margin"] is not None for r in rows)
    assert {r["stage_owner"] is None for r in rows} == {True, False}
