"""The order summary (OrderSummary) kept by the services equals a recount from the orders and their
history after any series of writes, refused ones included; `eoms reports rebuild-summary` restores it."""

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from eoms.core.errors import DomainError
from eoms.orders import services, summary
from eoms.orders.models import Order, OrderKind, OrderSummary
from eoms.orders.state import TRANSITIONS, OrderState

NAMES = sorted({t.name for t in TRANSITIONS} - {"withdraw", "return_for_revision"})
amounts = st.decimals(min_value=Decimal("1.00"), max_value=Decimal("99999999.99"), places=2)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.booleans(), st.sampled_from(OrderKind.values), amounts),
        st.tuples(st.just("walk"), st.integers(0, 50), st.sampled_from(NAMES)),
        st.tuples(st.just("amount"), st.integers(0, 50), amounts),
        st.tuples(st.just("kind"), st.integers(0, 50), st.sampled_from(OrderKind.values)),
    ),
    min_size=1,
    max_size=25,
)
# Time only moves forward, across examples too (the history is ordered by time), by up to 80 days a
# write: orders are created in different months and stay in states for different lengths of time.
CLOCK = [datetime(2026, 1, 1, 8, 0, tzinfo=UTC)]
steps = st.integers(min_value=1, max_value=80 * 24 * 3600 * 1000)  # milliseconds


def _apply(world, orders, op):
    kind = op[0]
    if kind == "create":
        _, own, order_kind, amount = op
        project, actor = (world.project, world.pm) if own else (world.other_project, world.admin)
        orders.append(
            services.create_order(
                actor=actor, project=project, title="管网改造", contract_amount=amount, kind=order_kind
            ).id
        )
        return
    if not orders:
        return
    order_id = orders[op[1] % len(orders)]
    if kind == "walk":
        name = op[2]
        order = Order.objects.get(pk=order_id)
        if name in ("approve", "reject"):
            if order.state == OrderState.PENDING_APPROVAL:
                world.decide(order, name)
            return
        world.walk(order, name)
    elif kind == "amount":
        services.update_order(actor=world.admin, order_id=order_id, changes={"contract_amount": op[2]})
    else:
        services.update_order(actor=world.admin, order_id=order_id, changes={"kind": op[2]})


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, gaps=st.lists(steps, min_size=25, max_size=25))
def test_the_maintained_summary_equals_a_recount(world, ops, gaps):
    orders = []
    for op, gap in zip(ops, gaps, strict=False):
        CLOCK[0] += timedelta(milliseconds=gap)
        # A refused write (DomainError) may leave nothing of it in the summary either.
        with time_machine.travel(CLOCK[0], tick=False), contextlib.suppress(DomainError):
            _apply(world, orders, op)
    assert summary.current() == summary.recount()


def test_a_transition_moves_the_order_and_counts_the_stay(world):
    with time_machine.travel(datetime(2026, 3, 31, 16, 30, tzinfo=UTC), tick=False):  # 1 April in Shanghai
        order = world.order(amount="120000.50")
    entered = order.stage_entered_at
    with time_machine.travel(entered + timedelta(hours=5, microseconds=7), tick=False):
        world.walk(order, "start_quotation")
    month = datetime(2026, 4, 1).date()
    key = (month, world.project.id, world.project.region, OrderKind.CONSTRUCTION)
    assert summary.current() == {
        (*key, "INITIATED"): (0, Decimal("0.00"), 1, 5 * 3600 * 1_000_000 + 7),
        (*key, "QUOTING"): (1, Decimal("120000.50"), 0, 0),
    }
    world.update(Order.objects.get(pk=order.id), contract_amount=Decimal("100000.00"), kind="design")
    design = (month, world.project.id, world.project.region, "design")
    assert summary.current() == {  # the ended stay moved with the type
        (*design, "INITIATED"): (0, Decimal("0.00"), 1, 5 * 3600 * 1_000_000 + 7),
        (*design, "QUOTING"): (1, Decimal("100000.00"), 0, 0),
    }
    assert summary.current() == summary.recount()


def test_rebuild_summary_command_restores_a_damaged_summary(world):
    world.order(OrderState.IN_EXECUTION)
    world.order(OrderState.CANCELLED, amount="5.00")
    expected = summary.current()
    assert expected == summary.recount()
    summary.compact()  # one row per bucket, so that each damaged row is a damaged bucket
    OrderSummary.objects.update(orders=7, amount=Decimal("1.00"))
    damaged = OrderSummary.objects.count() + 1
    OrderSummary.objects.create(
        month=datetime(2020, 1, 1).date(),
        project=world.project,
        region="north",
        kind="design",
        state="SETTLED",
        orders=3,
    )
    with pytest.raises(CommandError, match=f"differs from a recount in {damaged} buckets"):
        call_command("reports", "check-summary", stdout=StringIO())
    out = StringIO()
    call_command("reports", "rebuild-summary", stdout=out)
    assert summary.current() == expected
    assert f"{len(expected)} buckets" in out.getvalue()
    out = StringIO()
    call_command("reports", "check-summary", stdout=out)
    assert "equals a recount" in out.getvalue()


def test_writes_add_rows_and_compaction_merges_them(world):
    """A write adds its changes as rows (no bucket row is updated, so writers of one bucket do not
    wait for each other); compaction merges each bucket's rows into one and drops buckets summing to
    nothing, leaving every figure as it was."""
    running = world.order(OrderState.IN_EXECUTION)
    for name in ("hold", "resume", "hold"):
        running = services.transition_order(
            actor=world.pm, order_id=running.id, name=name, comment="停工", expected_version=running.version
        )
    before = summary.current()
    buckets = len(before)
    assert OrderSummary.objects.count() > buckets
    assert summary.compact() > 0
    assert summary.current() == before == summary.recount()
    assert OrderSummary.objects.count() == buckets
    assert summary.compact() == 0
