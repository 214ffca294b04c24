"""The demo company: planned deterministically, loaded through the services, audit chain intact."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import authenticate
from stdnum.cn import uscc

from eoms.accounts.models import OrgUnit, ProjectMembership, User
from eoms.accounts.roles import ProjectRole, Role
from eoms.core.audit import verify_chain
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.demo import PASSWORDS, USERS, build_plan, data, database_status, load_demo
from eoms.demo.pdf import pdf_document
from eoms.masterdata.models import Customer, Project, Supplier
from eoms.orders.models import Attachment, Order, OrderHistory
from eoms.orders.state import DEFAULT_STAGE_DAYS, OrderState

ANCHOR = datetime(2026, 6, 15, 4, 30, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
TAX_BY_KIND = {
    "construction": {Decimal("0.09"), Decimal("0.03")},
    "installation": {Decimal("0.09"), Decimal("0.03")},
    "maintenance": {Decimal("0.09")},
    "design": {Decimal("0.06")},
    "consulting": {Decimal("0.06")},
    "procurement": {Decimal("0.13")},
}


def _fingerprint(plan):
    return [(o.key, o.title, o.kind, o.amount, o.target, tuple(o.path), tuple(o.times)) for o in plan.orders]


def test_same_seed_same_plan_other_seed_other_plan():
    first = build_plan(orders=120, seed=9, anchor=ANCHOR)
    assert _fingerprint(first) == _fingerprint(build_plan(orders=120, seed=9, anchor=ANCHOR))
    assert [o.cost for o in first.orders] == [o.cost for o in build_plan(orders=120, seed=9, anchor=ANCHOR).orders]
    assert _fingerprint(first) != _fingerprint(build_plan(orders=120, seed=10, anchor=ANCHOR))


def test_full_plan_keeps_the_rules_of_the_order_tree_and_of_time():
    plan = build_plan(orders=300, seed=42, anchor=ANCHOR)
    orders = plan.orders
    assert len(orders) == 300
    assert set(Counter(o.target for o in orders)) == set(OrderState.values)
    levels = Counter(o.level for o in orders)
    assert set(levels) == {1, 2, 3} and levels[1] == 150
    start = plan.anchor - timedelta(days=300)
    for order in orders:
        assert len(order.times) == len(order.path) + 1
        assert all(a < b for a, b in zip(order.times, order.times[1:], strict=False)), order.title
        assert start <= order.times[0] and order.times[-1] <= plan.anchor + timedelta(minutes=60)
        local = [t.astimezone(SHANGHAI) for t in order.times]
        assert all(t.weekday() < 5 and 9 <= t.hour < 19 for t in local), order.title  # office hours
        assert Decimal("50000") <= order.amount <= Decimal("80000000")
        assert order.tax_rate in TAX_BY_KIND[order.kind]
        assert sum(c.amount for c in order.children) <= order.amount
        # A quoted order has the estimate of its quotation: a gross margin of 4–20 %.
        if "start_quotation" in order.path:
            assert order.cost is not None and order.cost % 100 == 0, order.title
            assert Decimal("0.80") * order.amount - 100 <= order.cost <= Decimal("0.96") * order.amount, order.title
        else:
            assert order.cost is None, order.title
        if order.parent is not None:
            assert order.times[0] > order.parent.time_of("sign")
            settles_at = order.parent.time_of("start_settlement")
            if settles_at is not None:  # the parent's settlement needs its children accepted first
                ready = next(i for i, n in enumerate(order.path) if n in ("accept", "cancel"))
                assert order.times[ready + 1] < settles_at
        if order.target == OrderState.CANCELLED and "sign" in order.path:
            assert order.path[-1] == "cancel"


def test_demo_content_is_valid_reference_data():
    codes = [c.uscc for c in data.CUSTOMERS] + [s.uscc for s in data.SUPPLIERS]
    assert len(codes) == len(set(codes)) == 40
    assert all(uscc.is_valid(code) for code in codes)
    assert {c.region for c in data.CUSTOMERS} == {
        "east", "north", "south", "central", "southwest", "northwest", "northeast"
    }  # fmt: skip
    assert {p.type_code for p in data.PROJECTS} == {code for code, _, _ in data.PROJECT_TYPES}
    assert {u.role for u in USERS} == set(Role.values)
    assert all(18 <= p.latitude <= 54 and 73 <= p.longitude <= 135 for p in data.PROJECTS)  # inside China


def test_pdf_documents_are_well_formed():
    pdf = pdf_document("Quotation (revision 2)", ["Order: ORD-2026-000001", "Amount: 1,000.00"])
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    xref_at = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref_at:].startswith(b"xref\n0 6\n")
    offsets = [int(line[:10]) for line in pdf[xref_at:].split(b"\n")[3:8]]
    assert [pdf[o:].split(b"\n")[0] for o in offsets] == [b"%d 0 obj" % n for n in range(1, 6)]
    assert b"(Quotation \\(revision 2\\)) Tj" in pdf


def test_load_demo_writes_a_consistent_company(db):
    assert database_status() == (0, False)
    anchor = datetime.now(UTC)
    summary = load_demo(orders=40, seed=7, anchor=anchor)
    plan = build_plan(orders=40, seed=7, anchor=anchor)

    assert verify_chain() is None
    assert database_status() == (17, True)
    assert (summary.users, summary.org_units, summary.customers, summary.projects, summary.suppliers) == (
        17,
        12,
        22,
        32,
        18,
    )
    assert (User.objects.count(), OrgUnit.objects.count(), Customer.objects.count()) == (17, 12, 22)
    assert (Project.objects.count(), Supplier.objects.count(), Order.objects.count()) == (32, 18, 40)
    targets = Counter(o.target for o in plan.orders)
    assert summary.by_state == {state: targets.get(state, 0) for state in OrderState.values}
    assert all(summary.by_state[state] >= 1 for state in OrderState.values)
    assert dict(Counter(Order.objects.values_list("level", flat=True))) == summary.by_level
    assert Attachment.objects.count() == summary.attachments
    assert AuditEntry.objects.count() == summary.audit_entries == OutboxMessage.objects.count()

    # The demo's events are delivered; only notifications about its last three days are unread, and
    # every pending approval task's assignee has an unread one for it.
    from eoms.approvals.models import ApprovalTask, TaskState
    from eoms.notifications.models import Notification

    assert not OutboxMessage.objects.filter(sent_at__isnull=True).exists()
    recent = set(
        OutboxMessage.objects.filter(created_at__gte=plan.anchor - timedelta(days=3)).values_list(
            "message_id", flat=True
        )
    )
    unread = list(Notification.objects.filter(read_at__isnull=True))
    assert unread and all(n.message_id in recent for n in unread)
    assert Notification.objects.filter(read_at__isnull=False).exists()
    waiting = ApprovalTask.objects.filter(state=TaskState.PENDING, created_at__gte=plan.anchor - timedelta(days=3))
    told = {(n.recipient_id, n.url) for n in unread if n.kind == "task_assigned"}
    assert waiting.exists()
    assert all(any(r == t.assignee_id and str(t.pk) in u for r, u in told) for t in waiting)

    # Every step happened at its planned time, in order: the chain's times never go back.
    times = list(AuditEntry.objects.order_by("seq").values_list("at", flat=True))
    assert times == sorted(times)
    assert times[0] >= plan.setup_at
    assert times[-1] <= anchor
    first_order = min(o.times[0] for o in plan.orders)
    assert Order.objects.order_by("created_at").first().created_at == first_order
    for planned in plan.orders:
        order = Order.objects.get(title=planned.title, contract_amount=planned.amount, level=planned.level)
        assert order.state == planned.target
        history = list(order.history.order_by("at", "id"))
        assert [h.transition for h in history] == ["create", *planned.path]
        assert [h.at for h in history] == planned.times
        assert order.created_at == planned.times[0]
        if planned.parent is not None:
            assert order.parent.title == planned.parent.title
        assert order.estimated_cost == planned.cost
        signed = order.attachments.filter(kind="signed_contract")
        assert signed.count() == (1 if "sign" in planned.path else 0)
        if signed:
            assert signed.get().content_type == "application/pdf"

    # Overdue: open orders whose stage deadline has passed, exactly as planned.
    now = datetime.now(UTC)
    expected_overdue = sum(
        1
        for o in plan.orders
        if o.target not in OrderState.terminal()
        and o.times[-1] + timedelta(days=settings.STAGE_DAYS.get(o.target, DEFAULT_STAGE_DAYS[o.target])) < now
    )
    assert summary.overdue == expected_overdue

    # The documented logins work, and every project has its team.
    for spec in USERS:
        user = authenticate(username=spec.username, password=PASSWORDS[spec.role])
        assert user is not None and user.groups.filter(name=spec.role).exists(), spec.username
    for project in Project.objects.all():
        roles = dict(ProjectMembership.objects.filter(project=project).values_list("user__username", "role"))
        spec = next(p for p in data.PROJECTS if p.code == project.code)
        assert roles == {
            spec.manager: ProjectRole.PM,
            spec.engineer: ProjectRole.ENGINEER,
            "approver_li": ProjectRole.VIEWER,
            "gm_wang": ProjectRole.VIEWER,
            "fin_qian": ProjectRole.VIEWER,
            "fin_he": ProjectRole.VIEWER,
        }
    assert (
        OrderHistory.objects.filter(transition="approve", order__contract_amount__gt=5_000_000)
        .exclude(actor__username="gm_wang")
        .count()
        == 0
    )


def test_full_plan_has_tight_bids_below_the_low_margin_rule():
    orders = [o for o in build_plan(orders=300, seed=42, anchor=ANCHOR).orders if o.cost is not None]
    margins = [(o.amount - o.cost) * 100 / o.amount for o in orders]
    low = [m for m in margins if m < 8]
    assert all(Decimal("4") <= m <= Decimal("20.2") for m in margins)
    assert 0.03 * len(orders) <= len(low) <= 0.15 * len(orders)


def test_the_standard_flow_sends_low_margin_quotations_to_the_general_manager(db):
    from eoms.approvals.models import ApprovalTask
    from eoms.demo.loader import GM_THRESHOLD, LOW_MARGIN

    plan = build_plan(orders=60, seed=3, anchor=ANCHOR)
    load_demo(orders=60, seed=3, anchor=ANCHOR)
    approved = [
        o
        for o in plan.orders
        if "approve" in o.path and o.kind not in ("design", "consulting") and o.amount < GM_THRESHOLD
    ]
    low = [o for o in approved if (o.amount - o.cost) * 100 / o.amount < LOW_MARGIN]
    assert low and len(low) < len(approved)  # the seed gives both kinds
    for planned in approved:
        order = Order.objects.get(title=planned.title, contract_amount=planned.amount, level=planned.level)
        deciders = set(
            ApprovalTask.objects.filter(instance__subject_id=str(order.id), state="approved").values_list(
                "assignee__username", flat=True
            )
        )
        expected = {"approver_li", "gm_wang"} if planned in low else {"approver_li"}
        assert deciders == expected, (planned.title, order.margin)
