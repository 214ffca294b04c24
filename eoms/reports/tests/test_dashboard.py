"""The reports API on a small world: exact figures by state, month, region and type, and stage cycle
times, from the summary and live alike; a project manager's cover their projects only."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from eoms.accounts.services import issue_api_token
from eoms.orders import services
from eoms.orders.state import OrderState

BASE = "/api/v1/reports"
S = OrderState
MAY = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)
JUNE = datetime(2026, 6, 3, 2, 0, tzinfo=UTC)
# 31 May 17:00 UTC is 1 June 01:00 in Shanghai: a June order.
LATE_MAY_UTC = datetime(2026, 5, 31, 17, 0, tzinfo=UTC)


def get(client, user, path, **params):
    token = issue_api_token(actor=user, name="reports")[1]
    response = client.get(f"{BASE}{path}", params, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def small(world):
    """world.project (east, the PM's): in May a construction order of 100.00 walked to QUOTING after
    2 h and submitted 3 h later (PENDING_APPROVAL), and a design order of 50.50 quoting after 4 h; in
    June (Shanghai time) a construction order of 25.25, INITIATED. world.other_project (moved to the
    north): a maintenance order of 1000.00 in June, cancelled after 1 h."""
    world.other_project.region = "north"
    world.other_project.save()
    with time_machine.travel(MAY, tick=False) as clock:
        first = world.order(amount="100.00")
        second = services.create_order(
            actor=world.pm, project=world.project, title="设计", contract_amount=Decimal("50.50"), kind="design"
        )
        clock.shift(timedelta(hours=2))
        world.walk(first, "start_quotation")
        clock.shift(timedelta(hours=2))
        world.walk(second, "start_quotation")
        clock.shift(timedelta(hours=1))
        world.walk(first, "submit")
    with time_machine.travel(LATE_MAY_UTC, tick=False):
        world.order(amount="25.25")
    with time_machine.travel(JUNE, tick=False) as clock:
        other = services.create_order(
            actor=world.admin,
            project=world.other_project,
            title="维保",
            contract_amount=Decimal("1000.00"),
            kind="maintenance",
        )
        clock.shift(timedelta(hours=1))
        services.transition_order(actor=world.admin, order_id=other.id, name="cancel", comment="业主取消")


def _row(**kw):
    kw["amount"] = kw.get("amount", "0.00")
    return kw


PM_DASHBOARD = {
    "totals": {"orders": 3, "amount": "175.75"},
    "by_state": [
        _row(state="INITIATED", orders=1, amount="25.25"),
        _row(state="PENDING_APPROVAL", orders=1, amount="100.00"),
        _row(state="QUOTING", orders=1, amount="50.50"),
    ],
    "by_month": [
        _row(month="2026-05-01", state="PENDING_APPROVAL", orders=1, amount="100.00"),
        _row(month="2026-05-01", state="QUOTING", orders=1, amount="50.50"),
        _row(month="2026-06-01", state="INITIATED", orders=1, amount="25.25"),
    ],
    "by_region": [
        _row(region="east", state="INITIATED", orders=1, amount="25.25"),
        _row(region="east", state="PENDING_APPROVAL", orders=1, amount="100.00"),
        _row(region="east", state="QUOTING", orders=1, amount="50.50"),
    ],
    "by_kind": [
        _row(kind="construction", state="INITIATED", orders=1, amount="25.25"),
        _row(kind="construction", state="PENDING_APPROVAL", orders=1, amount="100.00"),
        _row(kind="design", state="QUOTING", orders=1, amount="50.50"),
    ],
}


def _no_source(body):
    return {k: v for k, v in body.items() if k != "source"}


@pytest.mark.parametrize("source", ["summary", "live"])
def test_a_project_managers_dashboard_covers_their_projects(client, world, small, source):
    body = get(client, world.pm, "/dashboard", source=source)
    assert body["source"] == source
    assert _no_source(body) == PM_DASHBOARD


@pytest.mark.parametrize("user", ["admin", "auditor", "finance"])
@pytest.mark.parametrize("source", ["summary", "live"])
def test_administrators_auditors_and_finance_see_every_project(client, world, small, user, source):
    body = get(client, getattr(world, user), "/dashboard", source=source)
    assert body["totals"] == {"orders": 4, "amount": "1175.75"}
    assert body["by_region"] == [
        *PM_DASHBOARD["by_region"],
        _row(region="north", state="CANCELLED", orders=1, amount="1000.00"),
    ]
    assert body["by_kind"][-1] == _row(kind="maintenance", state="CANCELLED", orders=1, amount="1000.00")
    assert body["by_month"][-2:] == [
        _row(month="2026-06-01", state="CANCELLED", orders=1, amount="1000.00"),
        _row(month="2026-06-01", state="INITIATED", orders=1, amount="25.25"),
    ]


@pytest.mark.parametrize("source", ["summary", "live"])
def test_filters(client, world, small, source):
    may = get(client, world.admin, "/dashboard", source=source, month_from="2026-05-01", month_to="2026-05-31")
    assert may["totals"] == {"orders": 2, "amount": "150.50"}
    june = get(client, world.admin, "/dashboard", source=source, month_from="2026-06-15")
    assert june["totals"] == {"orders": 2, "amount": "1025.25"}
    north = get(client, world.admin, "/dashboard", source=source, region="north")
    assert north["by_state"] == [_row(state="CANCELLED", orders=1, amount="1000.00")]
    design = get(client, world.admin, "/dashboard", source=source, kind="design")
    assert design["by_state"] == [_row(state="QUOTING", orders=1, amount="50.50")]
    other = get(client, world.admin, "/dashboard", source=source, project=str(world.other_project.id))
    assert other["totals"] == {"orders": 1, "amount": "1000.00"}
    # The PM asking for another project's figures gets none: the scope applies first.
    assert get(client, world.pm, "/dashboard", source=source, project=str(world.other_project.id))["totals"] == {
        "orders": 0,
        "amount": "0.00",
    }


def _times(body):
    return {s["state"]: (s["stays"], s["average_hours"], s["total_hours"]) for s in body["states"] if s["stays"]}


@pytest.mark.parametrize("source", ["summary", "live"])
def test_stage_cycle_times(client, world, small, source):
    pm = get(client, world.pm, "/cycle-times", source=source)
    assert pm["source"] == source
    assert [s["state"] for s in pm["states"]] == list(S.values)
    # INITIATED: 2 h (first order) and 4 h (second); QUOTING: 3 h (first order, then submitted).
    assert _times(pm) == {"INITIATED": (2, "3.00", "6.00"), "QUOTING": (1, "3.00", "3.00")}
    assert next(s for s in pm["states"] if s["state"] == "SETTLED") == {
        "state": "SETTLED",
        "stays": 0,
        "average_hours": None,
        "total_hours": "0.00",
    }
    admin = get(client, world.admin, "/cycle-times", source=source)
    assert _times(admin) == {"INITIATED": (3, "2.33", "7.00"), "QUOTING": (1, "3.00", "3.00")}
    design = get(client, world.admin, "/cycle-times", source=source, kind="design")
    assert _times(design) == {"INITIATED": (1, "4.00", "4.00")}
    june = get(client, world.admin, "/cycle-times", source=source, month_from="2026-06-01")
    assert _times(june) == {"INITIATED": (1, "1.00", "1.00")}


def test_bad_parameters_answer_422(client, world):
    token = issue_api_token(actor=world.pm, name="reports")[1]
    for params in ({"source": "cache"}, {"month_from": "2026-13-01"}, {"project": "x"}, {"project": "-" * 36}):
        response = client.get(f"{BASE}/dashboard", params, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 422, params
        assert response["Content-Type"] == "application/problem+json"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="extended statistics are PostgreSQL's")
def test_live_figures_are_grouped_by_what_postgresql_has_statistics_for(world, small):
    """Migration orders.0009 tells PostgreSQL how few the live dashboard's groups are (decision 0022):
    the month expression of its statistics must be the one the live query groups by, or the planner
    ignores them (and the million-order dashboard loses its parallel scan)."""
    from django.test.utils import CaptureQueriesContext

    from eoms.orders.selectors import order_figures

    with CaptureQueriesContext(connection) as queries:
        order_figures(actor=world.admin, groupings=[("month", "state"), ("region", "kind")], live=True)
    (sql,) = [q["sql"] for q in queries.captured_queries if "orders_order" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_statisticsobjdef(oid) FROM pg_statistic_ext WHERE stxname = %s",
            ["orders_order_figures_stats"],
        )
        (definition,) = cursor.fetchone()
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0][0]["Plan"]
    group_key = plan.get("Group Key") or plan["Plans"][0].get("Group Key")
    month = next(k for k in group_key if "date_trunc" in k)
    assert month in definition, (month, definition)
    assert "(ndistinct)" in definition
    for column in ("state", "region", "kind"):
        assert column in definition
