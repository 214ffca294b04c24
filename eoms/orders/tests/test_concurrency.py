"""Races on real connections: many threads take the same transition or create orders at once.

Each thread has its own database connection (and closes it); a barrier releases them together.
PostgreSQL and MariaDB run 20 threads; SQLite (one writer at a time, IMMEDIATE transactions that
queue for up to 30 s) runs a smaller race where its test database allows it.
"""

from decimal import Decimal

import pytest
from django.db import connection

from eoms.accounts.selectors import get_active_user
from eoms.core.audit import verify_chain
from eoms.core.errors import Conflict
from eoms.core.models import AuditEntry
from eoms.masterdata.selectors import access_project
from eoms.orders import services
from eoms.orders.errors import InvalidTransition, StaleOrder
from eoms.orders.models import Order, OrderHistory
from eoms.orders.state import OrderState
from eoms.testing.concurrency import race

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

SQLITE = connection.vendor == "sqlite"
THREADS = 20


def _same_transition(world, n: int) -> None:
    order = world.order(OrderState.QUOTING)
    audit_before = AuditEntry.objects.count()

    def submit(i):
        actor = get_active_user(world.pm.pk)  # each thread its own user object and connection
        return services.transition_order(actor=actor, order_id=order.id, name="submit", comment=f"thread {i}")

    results = race(n, submit)
    won = [r for r in results if isinstance(r, Order)]
    lost = [r for r in results if not isinstance(r, Order)]
    assert len(won) == 1, results
    assert all(isinstance(r, StaleOrder | InvalidTransition) for r in lost), lost
    assert all(isinstance(r, Conflict) and r.status == 409 for r in lost)
    order.refresh_from_db()
    assert (order.state, order.version) == (OrderState.PENDING_APPROVAL, 3)
    rows = OrderHistory.objects.filter(order=order, transition="submit")
    assert rows.count() == 1
    assert rows.get().comment == won[0].history.get(transition="submit").comment
    # The winner's transition, and the approval it started: its start and its first task.
    assert AuditEntry.objects.count() == audit_before + 3
    assert verify_chain() is None


def _concurrent_creates(world, n: int) -> None:
    existing = Order.objects.count()

    def create(i):
        actor = get_active_user(world.pm.pk)
        project = access_project(actor, world.project.pk)
        order = services.create_order(
            actor=actor, project=project, title=f"并发创建 {i}", contract_amount=Decimal("1000.00") + i
        )
        return order.number

    results = race(n, create)
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == n
    year = results[0][4:8]
    assert sorted(results) == [f"ORD-{year}-{k:06d}" for k in range(existing + 1, existing + n + 1)]
    assert Order.objects.count() == existing + n
    assert verify_chain() is None


@pytest.mark.skipif(SQLITE, reason="needs a server database (PostgreSQL or MariaDB)")
def test_one_of_twenty_concurrent_transitions_wins(world):
    _same_transition(world, THREADS)


@pytest.mark.skipif(SQLITE, reason="needs a server database (PostgreSQL or MariaDB)")
def test_twenty_concurrent_creates_get_distinct_gapless_numbers(world):
    _concurrent_creates(world, THREADS)


@pytest.mark.skipif(SQLITE, reason="needs a server database (PostgreSQL or MariaDB)")
def test_the_summary_stays_exact_under_concurrent_writes(world):
    """Twenty threads at once, on orders of the same summary buckets: half hold or resume an order of
    their own (the two buckets of a transition, taken in both orders by different threads), half
    create one (a new bucket raced for by several), and four more compact the summary meanwhile. No
    deadlock, no error; the maintained summary equals a recount afterwards."""
    from eoms.orders import summary

    running = [world.order(OrderState.IN_EXECUTION) for _ in range(5)]
    held = [world.order(OrderState.ON_HOLD) for _ in range(5)]

    def write(i):
        if i >= THREADS:
            summary.compact(limit=2)
            return "compacted"
        actor = get_active_user(world.pm.pk)
        if i < 5:
            return services.transition_order(actor=actor, order_id=running[i].id, name="hold", comment="停工").state
        if i < 10:
            return services.transition_order(actor=actor, order_id=held[i - 5].id, name="resume").state
        project = access_project(actor, world.project.pk)
        kind = ("design", "consulting")[i % 2]
        return services.create_order(
            actor=actor, project=project, title=f"并发 {i}", contract_amount=Decimal("10.00") + i, kind=kind
        ).state

    results = race(THREADS + 4, write)
    expected = ["ON_HOLD"] * 5 + ["IN_EXECUTION"] * 5 + ["INITIATED"] * 10 + ["compacted"] * 4
    assert sorted(map(str, results)) == sorted(expected)
    assert summary.current() == summary.recount()
    summary.compact()
    assert summary.current() == summary.recount()
    assert verify_chain() is None
