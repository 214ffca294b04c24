"""Reports API: the dashboard's figures (orders and amounts by state × month, by region, by type) and
stage cycle times, over the orders in the caller's scope (a project manager's cover their projects;
administrators, auditors and finance see all). Read from the maintained order summary; `source=live`
counts the same figures from the orders and their history (slower: for checking, and the benchmark)."""

import uuid
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from eoms.core.api import ProblemSchema, render
from eoms.core.ratelimit import EXPENSIVE
from eoms.orders import selectors
from eoms.orders.state import OrderState

router = Router(tags=["reports"])

HOUR_US = Decimal(3_600_000_000)
CENT = Decimal("0.01")


class FiguresIn(Schema):
    month_from: date | None = Field(None, description="First month (any day of it) of the orders' creation")
    month_to: date | None = Field(None, description="Last month (any day of it), inclusive")
    project: uuid.UUID | None = Field(None, description="Only this project's orders")
    region: str | None = Field(None, max_length=20)
    kind: str | None = Field(None, max_length=20)
    source: Literal["summary", "live"] = Field(
        "summary", description="summary: the maintained order summary; live: counted from the orders now"
    )

    def filters(self) -> selectors.SummaryFilters:
        return selectors.SummaryFilters(
            month_from=self.month_from,
            month_to=self.month_to,
            project=str(self.project) if self.project else None,
            region=self.region,
            kind=self.kind,
        )


class StateRow(Schema):
    state: OrderState
    orders: int
    amount: Decimal


class MonthRow(StateRow):
    month: date = Field(description="The first day of the month the orders were created in")


class RegionRow(StateRow):
    region: str


class KindRow(StateRow):
    kind: str


class Totals(Schema):
    orders: int
    amount: Decimal


class DashboardOut(Schema):
    source: str
    totals: Totals
    by_state: list[StateRow]
    by_month: list[MonthRow]
    by_region: list[RegionRow]
    by_kind: list[KindRow]


class StageTime(Schema):
    state: OrderState
    stays: int = Field(description="Stays in the state that have ended (the order entered it and left)")
    average_hours: Decimal | None = Field(description="Their average length in hours; null without any")
    total_hours: Decimal


class CycleTimesOut(Schema):
    source: str
    states: list[StageTime]


def _hours(us: int) -> Decimal:
    return (Decimal(us) / HOUR_US).quantize(CENT, ROUND_HALF_UP)


@router.get(
    "/dashboard",
    response={200: DashboardOut, 422: ProblemSchema},
    summary="Orders and amounts by state, by month × state, by region × state and by type × state",
    throttle=EXPENSIVE,
)
def dashboard(request: HttpRequest, params: Query[FiguresIn]):
    by_state, by_month, by_region, by_kind = selectors.order_figures(
        actor=request.auth,
        groupings=[("state",), ("month", "state"), ("region", "state"), ("kind", "state")],
        filters=params.filters(),
        live=params.source == "live",
    )
    body = {
        "source": params.source,
        "totals": {
            "orders": sum(r["orders"] for r in by_state),
            "amount": sum((r["amount"] for r in by_state), Decimal("0.00")),
        },
        "by_state": by_state,
        "by_month": by_month,
        "by_region": by_region,
        "by_kind": by_kind,
    }
    return render(request, body)


@router.get(
    "/cycle-times",
    response={200: CycleTimesOut, 422: ProblemSchema},
    summary="Stage cycle times: how long orders stayed in each state, from their history",
    throttle=EXPENSIVE,
)
def cycle_times(request: HttpRequest, params: Query[FiguresIn]):
    times = selectors.stage_times(actor=request.auth, filters=params.filters(), live=params.source == "live")
    return {
        "source": params.source,
        "states": [
            {
                "state": state,
                "stays": t["stays"],
                "average_hours": _hours(t["stay_us"] // t["stays"]) if t["stays"] else None,
                "total_hours": _hours(t["stay_us"]),
            }
            for state, t in times.items()
        ],
    }
