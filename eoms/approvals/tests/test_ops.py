"""Operating the engine: the SLA timers run from `eoms tick` and the relay's periodic jobs, and
/metrics counts pending and overdue approval tasks."""

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from eoms.approvals.models import ApprovalAction, ApprovalTask
from eoms.core import periodic
from eoms.core.tests.test_metrics import TOKEN, scrape, value
from eoms.orders.state import OrderState
from eoms.testing.world import publish_flow

pytestmark = pytest.mark.django_db

# Monday 2026-03-02 10:00 in Shanghai; a 2-working-hour SLA ends at 12:00 the same day.
MONDAY = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
SLA_FLOW = {
    "nodes": [
        {
            "type": "approval",
            "id": "review",
            "name": "Review",
            "approvers": {"source": "role", "role": "approver"},
            "sla_hours": "2",
            "remind_after_hours": "1",
            "on_timeout": "approve",
        }
    ]
}


@pytest.fixture
def late_order(world):
    publish_flow(world.admin, SLA_FLOW, key="sla", name="SLA", is_default=True, priority=1)
    with time_machine.travel(MONDAY, tick=False):
        return world.order(OrderState.PENDING_APPROVAL)


def test_tick_runs_the_timers_once(world, late_order):
    out = StringIO()
    with time_machine.travel(datetime(2026, 3, 2, 3, 30, tzinfo=UTC), tick=False):  # 11:30: reminder only
        call_command("tick", stdout=out)
        call_command("tick", stdout=out)
    # Every job runs on each tick (notifications' stage-deadline reminders and webhooks' retries
    # too; the order's stage deadline is days away, so no reminder).
    others = (
        "notifications.stage_deadlines: {'near': 0, 'overdue': 0}\n"
        "webhooks.deliveries: {'delivered': 0, 'retry': 0, 'failed': 0, 'skipped': 0}\n"
        "oauth.clear_expired: {'access_tokens': 0, 'refresh_tokens': 0, 'grants': 0}\n"
    )
    # Core's jobs, sealing the audit chain and its checkpoint, run first on each tick, then the order
    # summary's compaction (eoms/core/tests/test_audit_seal.py, test_audit_checkpoints.py,
    # eoms/orders/tests/test_summary.py).
    lines = out.getvalue().splitlines(keepends=True)
    elsewhere = ("core.", "orders.compact_summary:")
    tested_there = [line.split(":")[0] for line in lines if line.startswith(elsewhere)]
    assert tested_there == ["core.audit_seal", "core.audit_checkpoint", "orders.compact_summary"] * 2
    assert "".join(line for line in lines if not line.startswith(elsewhere)) == (
        "approvals.timers: {'reminded': 1, 'timed_out': 0}\n"
        + others
        + "approvals.timers: {'reminded': 0, 'timed_out': 0}\n"
        + others
    )
    with time_machine.travel(datetime(2026, 3, 2, 4, 1, tzinfo=UTC), tick=False):  # 12:01: past the SLA
        call_command("tick", stdout=StringIO())
    late_order.refresh_from_db()
    assert late_order.state == OrderState.APPROVED
    auto = ApprovalAction.objects.get(kind="auto_approve")
    assert auto.actor is None
    assert "SLA of 2 working hours at “Review” exceeded" in auto.detail["rule"]


def test_relay_runs_due_periodic_jobs(world, late_order):
    calls = []
    periodic.register("test.job", lambda: calls.append(1) or "ran", every=60)
    try:
        with time_machine.travel(datetime(2026, 3, 2, 3, 30, tzinfo=UTC), tick=False):
            first = periodic.run_due(now=1_000_000.0)
            second = periodic.run_due(now=1_000_030.0)  # not yet due again
            third = periodic.run_due(now=1_000_061.0)
    finally:
        periodic._JOBS.pop("test.job")
    assert first["test.job"] == "ran" and "test.job" not in second and third["test.job"] == "ran"
    assert first["approvals.timers"] == {"reminded": 1, "timed_out": 0}
    assert calls == [1, 1]


def test_metrics_count_pending_and_overdue_tasks(client, world, late_order, settings):
    settings.EOMS_METRICS_TOKEN = TOKEN
    with time_machine.travel(datetime(2026, 3, 2, 3, 0, tzinfo=UTC), tick=False):
        samples = scrape(client)
    assert (value(samples, "eoms_approval_tasks_pending"), value(samples, "eoms_approval_tasks_overdue")) == (1, 0)
    with time_machine.travel(datetime(2026, 3, 2, 5, 0, tzinfo=UTC), tick=False):
        samples = scrape(client)
    assert (value(samples, "eoms_approval_tasks_pending"), value(samples, "eoms_approval_tasks_overdue")) == (1, 1)
    ApprovalTask.objects.update(state="approved")
    assert value(scrape(client), "eoms_approval_tasks_pending") == 0
