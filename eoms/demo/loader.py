"""Load the demo company through the services, as its people would have entered it.

`build_plan` decides everything first, deterministically from the seed: the orders, their
subcontract trees and the time of every step of their histories over the past ten months.
`load_demo` then executes the steps in chronological order with the clock set to each step's time
(time-machine), so every row, history entry and audit entry carries a plausible past time and the
audit chain's times never decrease. Nothing is written except through services.
"""

import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import time_machine
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from eoms.accounts import selectors as account_selectors
from eoms.accounts import services as account_services
from eoms.accounts.roles import ProjectRole
from eoms.approvals import selectors as approval_selectors
from eoms.approvals import services as approval_services
from eoms.core import audit
from eoms.core.models import AuditEntry
from eoms.masterdata import selectors as masterdata_selectors
from eoms.masterdata import services as masterdata_services
from eoms.orders import selectors as order_selectors
from eoms.orders import services as order_services
from eoms.orders.attachments import inspect_upload
from eoms.orders.state import DEFAULT_STAGE_DAYS, OrderState

from . import data
from .pdf import pdf_document

__all__ = ["PlannedOrder", "Plan", "DemoSummary", "build_plan", "load_demo", "database_status"]

S = OrderState
LOCAL = ZoneInfo("Asia/Shanghai")
HISTORY_DAYS = 300  # orders start within the last ~10 months
MAIN_SHARE = 0.5  # about half the orders are main contracts, the rest subcontracts

MAIN_FLOW = [
    "start_quotation",
    "submit",
    "approve",
    "sign",
    "start_execution",
    "request_acceptance",
    "accept",
    "start_settlement",
    "settle",
]
STEPS_TO = {
    S.INITIATED: 0,
    S.QUOTING: 1,
    S.PENDING_APPROVAL: 2,
    S.APPROVED: 3,
    S.SIGNED: 4,
    S.IN_EXECUTION: 5,
    S.PENDING_ACCEPTANCE: 6,
    S.ACCEPTED: 7,
    S.SETTLING: 8,
    S.SETTLED: 9,
}
TARGET_WEIGHTS = {
    S.INITIATED: 5,
    S.QUOTING: 8,
    S.PENDING_APPROVAL: 8,
    S.APPROVED: 5,
    S.REJECTED: 3,
    S.SIGNED: 5,
    S.IN_EXECUTION: 20,
    S.ON_HOLD: 3,
    S.PENDING_ACCEPTANCE: 7,
    S.ACCEPTED: 6,
    S.SETTLING: 7,
    S.SETTLED: 15,
    S.CANCELLED: 6,
}
# A subcontract under a main contract that goes to settlement must be accepted (or cancelled) first.
READY_WEIGHTS = {S.ACCEPTED: 2, S.SETTLING: 3, S.SETTLED: 9, S.CANCELLED: 1}
CAN_HAVE_CHILDREN = {S.IN_EXECUTION, S.ON_HOLD, S.PENDING_ACCEPTANCE, S.ACCEPTED, S.SETTLING, S.SETTLED}
# Days an order typically stays in a state before its next step (uniform range).
DWELL = {
    S.INITIATED: (0.5, 4),
    S.QUOTING: (2, 12),
    S.PENDING_APPROVAL: (0.2, 3.5),
    S.APPROVED: (1, 7),
    S.REJECTED: (1, 6),
    S.SIGNED: (1, 6),
    S.IN_EXECUTION: (25, 150),
    S.ON_HOLD: (7, 35),
    S.PENDING_ACCEPTANCE: (3, 16),
    S.ACCEPTED: (5, 28),
    S.SETTLING: (7, 30),
}
TARGET_OF = {
    "start_quotation": S.QUOTING,
    "submit": S.PENDING_APPROVAL,
    "approve": S.APPROVED,
    "reject": S.REJECTED,
    "revise": S.QUOTING,
    "sign": S.SIGNED,
    "start_execution": S.IN_EXECUTION,
    "hold": S.ON_HOLD,
    "resume": S.IN_EXECUTION,
    "request_acceptance": S.PENDING_ACCEPTANCE,
    "accept": S.ACCEPTED,
    "reject_acceptance": S.IN_EXECUTION,
    "start_settlement": S.SETTLING,
    "settle": S.SETTLED,
    "cancel": S.CANCELLED,
}
# Contract amounts (yuan, tax included) of a main construction contract, by project type.
AMOUNT_RANGE = {
    "municipal_road": (2_000_000, 60_000_000),
    "water": (1_000_000, 40_000_000),
    "bridge": (5_000_000, 80_000_000),
    "building": (5_000_000, 80_000_000),
    "landscaping": (300_000, 8_000_000),
    "mep": (500_000, 20_000_000),
    "power": (1_000_000, 30_000_000),
    "tunnel": (10_000_000, 80_000_000),
}
SCOPE = {
    "municipal_road": "道路工程、排水工程、交通设施及照明工程",
    "water": "管网铺设、泵站土建及设备安装、管道试压与冲洗消毒",
    "bridge": "下部结构、预应力箱梁、桥面系及附属工程",
    "building": "土建、装饰装修、给排水及电气安装工程",
    "landscaping": "地形整理、苗木种植、园路铺装及一年养护",
    "mep": "通风空调、给排水、强弱电及消防系统安装调试",
    "power": "土建、电气一次二次设备安装及调试、线路工程",
    "tunnel": "洞身开挖、初期支护、二次衬砌及机电工程",
}
GM_THRESHOLD = Decimal("5000000")  # above this the general manager approves
# The quotation's estimated cost, as a share of the contract amount: most bids leave a gross margin
# of 8–20 %; a tight bid (one in twelve) 4–7.5 %, below the 8 % at which the general manager
# approves too.
COST_SHARE = (0.80, 0.92)
TIGHT_COST_SHARE = (0.925, 0.96)
TIGHT_BIDS = 1 / 12
LOW_MARGIN = Decimal("8")  # percent; a quotation below it goes to the general manager
MIN_SUBCONTRACT = Decimal("50000")

COMMENTS = {
    "reject": [
        "报价偏高，请核减措施费后重新提交。",
        "工程量清单与图纸不符，请复核后重新报价。",
        "付款条件不符合公司标准合同，请与业主重新商定。",
    ],
    "revise": ["已按审批意见调整报价并补充清单说明。", "已核减措施费，重新报价。"],
    "approve": ["同意。", "同意，注意控制分包成本。", ""],
    "hold": ["业主资金未到位，暂停施工。", "设计变更待确认，暂停施工。", "雨季汛期，按监理指令停工。"],
    "resume": ["复工条件已具备，恢复施工。", "变更已确认，恢复施工。"],
    "reject_acceptance": ["验收发现路面平整度不合格，整改后复验。", "竣工资料不全，补齐后重新验收。"],
    "cancel": ["业主调整投资计划，项目取消。", "客户选择其他承包商，订单取消。", "报价未获业主接受，订单取消。"],
    "settle": ["结算完成，质保金3%按合同约定预留。", "结算审定，尾款已支付。"],
}


@dataclass
class PlannedOrder:
    """One order of the plan: what it is, the path of transitions it takes, and when."""

    key: int
    project: data.ProjectSpec
    parent: "PlannedOrder | None"
    title: str
    kind: str
    tax_rate: Decimal
    amount: Decimal
    target: str
    path: list[str]
    supplier: data.SupplierSpec | None = None
    cost: Decimal | None = None  # the quotation's estimated cost; None for an order never quoted
    times: list[datetime] = field(default_factory=list)  # creation, then one per transition
    children: list["PlannedOrder"] = field(default_factory=list)
    full: bool = False  # takes no more subcontracts

    @property
    def level(self) -> int:
        return 1 if self.parent is None else self.parent.level + 1

    def time_of(self, transition: str) -> datetime | None:
        return self.times[self.path.index(transition) + 1] if transition in self.path else None

    @property
    def room(self) -> Decimal:
        return self.amount - sum((c.amount for c in self.children), Decimal(0))


@dataclass
class Plan:
    seed: int
    anchor: datetime
    setup_at: datetime
    orders: list[PlannedOrder]


@dataclass
class DemoSummary:
    users: int
    org_units: int
    customers: int
    projects: int
    suppliers: int
    orders: int
    by_state: dict[str, int]
    by_level: dict[int, int]
    overdue: int
    attachments: int
    audit_entries: int
    seconds: float


# ---------------------------------------------------------------------------------------- planning


def _amount(rng: random.Random, low: float, high: float) -> Decimal:
    """Log-uniform between low and high, rounded down to 100 yuan, as contract prices are."""
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    return Decimal(int(value // 100) * 100)


def _path(rng: random.Random, target: str) -> list[str]:
    if target == S.CANCELLED:
        source = rng.choices(
            [S.INITIATED, S.QUOTING, S.PENDING_APPROVAL, S.REJECTED, S.IN_EXECUTION], weights=[2, 4, 1, 3, 1]
        )[0]
        return [*_path(rng, source), "cancel"]
    if target == S.REJECTED:
        path = ["start_quotation", "submit", "reject"]
    elif target == S.ON_HOLD:
        path = [*MAIN_FLOW[:5], "hold"]
    else:
        path = MAIN_FLOW[: STEPS_TO[target]]
    if "submit" in path and path.index("submit") + 1 < len(path) and rng.random() < 0.18:
        at = path.index("submit") + 1
        path[at:at] = ["reject", "revise", "submit"]
    if "request_acceptance" in path and rng.random() < 0.12:
        at = path.index("start_execution") + 1
        path[at:at] = ["hold", "resume"]
    if "accept" in path and rng.random() < 0.12:
        at = path.index("request_acceptance") + 1
        path[at:at] = ["reject_acceptance", "request_acceptance"]
    return path


def _dwell_days(rng: random.Random, path: list[str], amount: Decimal) -> list[float]:
    """How long the order stays in the state before each transition of its path."""
    state, days = S.INITIATED, []
    # Bigger contracts take longer on site.
    size = min(2.0, max(0.5, math.log10(float(amount)) - 5.5))
    for name in path:
        low, high = DWELL[state]
        days.append(rng.uniform(low, high) * (size if state == S.IN_EXECUTION else 1))
        state = TARGET_OF[name]
    return days


def _age_days(rng: random.Random, target: str) -> float:
    """How long ago the order entered its current state; beyond the stage's days it is overdue."""
    if target in (S.SETTLED, S.CANCELLED):
        return rng.uniform(2, 150)
    limit = settings.STAGE_DAYS.get(target, DEFAULT_STAGE_DAYS.get(target, 10))
    return rng.uniform(0.05, 1.2) * limit


def _place(rng, durations: list[float], lo: datetime, hi: datetime, age: float) -> list[datetime]:
    """Times of creation and of each transition, ending `age` days before `hi`, starting no earlier
    than `lo`; a history too long for the window is compressed."""
    window = max((hi - lo).total_seconds() / 86400, 0.01)
    age = min(age, window * rng.uniform(0.2, 0.6)) if age > window * 0.6 else age
    last = window - age
    span = sum(durations)
    if span > last * 0.97:
        scale = last * rng.uniform(0.75, 0.95) / span if span else 1
        durations = [d * scale for d in durations]
        span = sum(durations)
    offsets = [last - span]
    for d in durations:
        offsets.append(offsets[-1] + d)
    return [lo + timedelta(days=x) for x in offsets]


def _working_time(rng: random.Random, moment: datetime, limit: datetime | None = None) -> datetime:
    """The same moment if it falls in office hours (Mon–Fri 09:00–18:00 Shanghai); else the start of
    the next working period plus a little, or, if that would pass `limit`, the end of the previous one."""
    local = moment.astimezone(LOCAL)
    if local.weekday() < 5 and 9 <= local.hour < 18:
        return moment
    day = local.date() if local.hour < 9 else local.date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    later = datetime(day.year, day.month, day.day, 9, 0, tzinfo=LOCAL) + timedelta(minutes=rng.uniform(0, 150))
    if limit is None or later < limit:
        return later.astimezone(moment.tzinfo)
    day = local.date() if local.hour >= 18 else local.date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    earlier = datetime(day.year, day.month, day.day, 18, 0, tzinfo=LOCAL) - timedelta(minutes=rng.uniform(5, 150))
    return earlier.astimezone(moment.tzinfo)


def _schedule(rng: random.Random, order: PlannedOrder, lo: datetime, hi: datetime, ready_by: datetime | None):
    """Set `order.times`: creation and each transition, between `lo` and `hi`, in office hours; when
    `ready_by` is given, acceptance (or cancellation) comes before it."""
    durations = _dwell_days(rng, order.path, order.amount)
    ready_at = next((i for i, n in enumerate(order.path) if n in ("accept", "cancel")), None)
    if ready_by is not None and ready_at is not None:
        # Up to acceptance (or cancellation) before the parent's settlement starts; the rest after.
        ready_by = ready_by - timedelta(hours=1)
        times = _place(rng, durations[: ready_at + 1], lo, ready_by, rng.uniform(0.5, 10))
        limits = [ready_by] * len(times)
        tail = durations[ready_at + 1 :]
        if tail:
            start = times[-1]
            end = max(hi - timedelta(days=_age_days(rng, order.target)), start + (hi - start) / 2)
            room = (end - start).total_seconds() / 86400
            if sum(tail) > room * 0.95:
                tail = [d * room * rng.uniform(0.6, 0.95) / sum(tail) for d in tail]
            at = end - timedelta(days=sum(tail))
            for d in tail:
                at += timedelta(days=d)
                times.append(at)
                limits.append(hi)
    else:
        times = _place(rng, durations, lo, hi, _age_days(rng, order.target))
        limits = [hi] * len(times)
    placed = []
    for moment, limit in zip(times, limits, strict=True):
        moment = _working_time(rng, moment, limit)
        if placed and moment <= placed[-1]:
            moment = placed[-1] + timedelta(minutes=rng.uniform(5, 60))
        placed.append(moment)
    order.times = placed


def _main_order(rng, key: int, project: data.ProjectSpec, target: str, nth: int) -> PlannedOrder:
    kind = rng.choices(["build", "design", "maintenance", "consulting"], weights=[76, 12, 7, 5])[0]
    if kind == "design":
        title, kind, rate, amount = f"{project.name}施工图设计", "design", "0.06", _amount(rng, 80_000, 2_500_000)
    elif kind == "maintenance":
        title, kind, rate, amount = (
            f"{project.name}运维养护服务",
            "maintenance",
            "0.09",
            _amount(rng, 100_000, 3_000_000),
        )
    elif kind == "consulting":
        title, kind, rate, amount = (
            f"{project.name}全过程造价咨询",
            "consulting",
            "0.06",
            _amount(rng, 50_000, 1_200_000),
        )
    else:
        kind = "installation" if project.type_code in ("mep", "power") else "construction"
        section = "施工总承包" if nth == 0 else f"{'一二三四五六七八九'[min(nth, 8)]}期工程施工"
        title, rate, amount = f"{project.name}{section}", "0.09", _amount(rng, *AMOUNT_RANGE[project.type_code])
    return PlannedOrder(key, project, None, title, kind, Decimal(rate), amount, target, _path(rng, target))


def _sub_order(rng, key: int, parent: PlannedOrder, target: str, supplier: data.SupplierSpec) -> PlannedOrder:
    if supplier.kind == "supplier":
        kind, rate, share = "procurement", "0.13", rng.uniform(0.05, 0.2)
    else:
        kind = "installation" if supplier.trade.startswith(("机电", "变电")) else "construction"
        rate, share = ("0.03" if supplier.small_scale else "0.09"), rng.uniform(0.08, 0.35)
    amount = min(parent.amount * Decimal(str(round(share, 4))), parent.room * Decimal("0.9"))
    amount = Decimal(int(amount // 100) * 100)
    suffix = "（再分包）" if parent.level == 2 and supplier.kind == "subcontractor" else ""
    title = f"{parent.project.name}{supplier.trade}{suffix}"
    order = PlannedOrder(key, parent.project, parent, title, kind, Decimal(rate), amount, target, _path(rng, target))
    order.supplier = supplier
    return order


def build_plan(*, orders: int = 300, seed: int = 42, anchor: datetime | None = None) -> Plan:
    """Decide every order and the time of every step. Pure: the same arguments give the same plan."""
    if orders < 1:
        raise ValueError("The demo needs at least one order.")
    rng = random.Random(seed)
    anchor = (anchor or timezone.now()).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    start = anchor - timedelta(days=HISTORY_DAYS)
    hi = anchor
    setup_at = _working_time(rng, start - timedelta(days=21))
    planned: list[PlannedOrder] = []
    per_project: Counter = Counter()

    def add_main() -> PlannedOrder:
        states = list(TARGET_WEIGHTS)
        # The first mains cover every state once, so even a small demo shows all of them.
        if len(planned) < len(states):
            target = states[len(planned)]
        else:
            target = rng.choices(states, weights=list(TARGET_WEIGHTS.values()))[0]
        project = rng.choice(data.PROJECTS)
        order = _main_order(rng, len(planned), project, target, per_project[project.code])
        per_project[project.code] += 1
        _schedule(rng, order, start, hi, None)
        planned.append(order)
        return order

    mains = max(min(orders, len(TARGET_WEIGHTS)), round(orders * MAIN_SHARE))
    for _ in range(mains):
        add_main()
    while len(planned) < orders:
        parents = [o for o in planned if _child_window(o, hi) is not None]
        if not parents:
            add_main()
            continue
        parent = rng.choices(parents, weights=[1] * len(parents))[0]
        lo, ready_by = _child_window(parent, hi)
        lo = lo + timedelta(days=rng.uniform(2, 15))
        if ready_by is not None:
            target = rng.choices(list(READY_WEIGHTS), weights=list(READY_WEIGHTS.values()))[0]
        else:
            target = rng.choices(list(TARGET_WEIGHTS), weights=list(TARGET_WEIGHTS.values()))[0]
        fitting = [s for s in data.SUPPLIERS if parent.project.type_code in s.types]
        near = [s for s in fitting if s.region == _region(parent.project)]
        supplier = rng.choice(near if near and rng.random() < 0.6 else fitting or list(data.SUPPLIERS))
        child = _sub_order(rng, len(planned), parent, target, supplier)
        if child.amount < MIN_SUBCONTRACT:
            parent.full = True
            continue
        _schedule(rng, child, lo, hi, ready_by)
        parent.children.append(child)
        planned.append(child)
    _estimate_costs(random.Random(seed + 3), planned)
    return Plan(seed=seed, anchor=anchor, setup_at=setup_at, orders=planned)


def _estimate_costs(rng: random.Random, orders: list[PlannedOrder]) -> None:
    """The estimated cost of each order that gets a quotation, rounded to 100 yuan. Its own random
    stream: the rest of the plan is the same with or without it."""
    for order in orders:
        if "start_quotation" not in order.path:
            continue
        low, high = TIGHT_COST_SHARE if rng.random() < TIGHT_BIDS else COST_SHARE
        share = Decimal(str(round(rng.uniform(low, high), 4)))
        order.cost = Decimal(int(order.amount * share // 100) * 100)


def _region(project: data.ProjectSpec) -> str:
    return next(c.region for c in data.CUSTOMERS if c.key == project.customer)


def _child_window(order: PlannedOrder, hi: datetime) -> tuple[datetime, datetime | None] | None:
    """When a subcontract of `order` may be opened (after it is signed) and by when it must be
    accepted (before `order` starts settlement), or None if it takes no more subcontracts."""
    if order.level >= order_services.MAX_LEVEL or order.target not in CAN_HAVE_CHILDREN:
        return None
    if order.full or order.room < MIN_SUBCONTRACT * 2:
        return None
    lo = order.time_of("sign")
    ready_by = order.time_of("start_settlement")
    end = ready_by or hi
    if lo is None or (end - lo).days < 25:
        return None
    return lo, ready_by


# --------------------------------------------------------------------------------------- execution


class _Loader:
    """Executes a plan through the services, keeping the objects it creates by their demo keys."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.rng = random.Random(plan.seed + 1)
        self.units: dict = {}
        self.users: dict = {}
        self.types: dict = {}
        self.customers: dict = {}
        self.projects: dict = {}
        self.order_ids: dict[int, object] = {}
        self.numbers: dict[int, str] = {}
        self.submissions: Counter = Counter()

    # setup: departments, people, master data, memberships
    def setup_steps(self):
        yield from (lambda u=u: self.create_unit(u) for u in data.ORG_UNITS)
        yield from (lambda u=u: self.create_user(u) for u in data.USERS)
        yield from (lambda t=t: self.create_type(*t) for t in data.PROJECT_TYPES)
        yield from (lambda c=c: self.create_customer(c) for c in data.CUSTOMERS)
        yield from (lambda s=s: self.create_supplier(s) for s in data.SUPPLIERS)
        for project in data.PROJECTS:
            yield lambda p=project: self.create_project(p)
            members = [
                (project.engineer, ProjectRole.ENGINEER),
                ("approver_li", ProjectRole.VIEWER),
                ("gm_wang", ProjectRole.VIEWER),
                ("fin_qian", ProjectRole.VIEWER),
                ("fin_he", ProjectRole.VIEWER),
            ]
            for username, role in members:
                yield lambda p=project, u=username, r=role: account_services.set_membership(
                    actor=self.users["admin"], user=self.users[u], project=self.projects[p.code], role=r
                )
        # The flows name users by id, so they are built when their step runs, after the users exist.
        yield from (lambda i=i: self.publish_flow(self.flows()[i]) for i in range(2))

    def flows(self) -> list[dict]:
        """The company's approval rules (domain.md: the department head approves; above ¥5,000,000
        the general manager too, and so for a quotation whose gross margin is below 8 %; finance is
        copied on every approved quotation). Design and consulting orders, small and frequent, need
        the department head alone."""
        li, gm = str(self.users["approver_li"].id), str(self.users["gm_wang"].id)
        head = {
            "type": "approval",
            "id": "dept_head",
            "name": "工程管理部审批",
            "approvers": {"source": "users", "users": [li]},
            "mode": "any",
            "sla_hours": "16",
            "remind_after_hours": "8",
            "editable_fields": ["description"],
        }
        return [
            {
                "key": "order-standard",
                "name": "工程订单审批",
                "description": "部门负责人审批；合同额 500 万元及以上或毛利率低于 8% 增加总经理审批；抄送财务。",
                "is_default": True,
                "priority": 100,
                "document": {
                    "nodes": [
                        head,
                        {
                            "type": "branch",
                            "id": "by_amount",
                            "name": "按合同额",
                            "branches": [
                                {
                                    "id": "large",
                                    "name": "500 万元及以上或毛利率低于 8%",
                                    "when": {
                                        "any_of": [
                                            [{"field": "amount", "operator": "gte", "value": "5000000"}],
                                            [{"field": "margin", "operator": "lt", "value": str(LOW_MARGIN)}],
                                        ]
                                    },
                                    "nodes": [
                                        {
                                            "type": "approval",
                                            "id": "gm",
                                            "name": "总经理审批",
                                            "approvers": {"source": "users", "users": [gm]},
                                            "mode": "any",
                                            "sla_hours": "24",
                                        }
                                    ],
                                },
                                {"id": "small", "name": "其他", "default": True, "nodes": []},
                            ],
                        },
                        {
                            "type": "cc",
                            "id": "cc_finance",
                            "name": "抄送财务",
                            "recipients": {"source": "role", "role": "finance"},
                        },
                    ],
                    "on_reject": "rejected",
                },
            },
            {
                "key": "order-design",
                "name": "设计/咨询订单审批",
                "description": "设计、咨询类订单由工程管理部审批。",
                "priority": 10,
                "applies_when": {"any_of": [[{"field": "kind", "operator": "in", "value": ["design", "consulting"]}]]},
                "document": {"nodes": [head], "on_reject": "rejected"},
            },
        ]

    def publish_flow(self, flow: dict):
        admin = self.users["admin"]
        definition = approval_services.save_definition(actor=admin, **flow)
        approval_services.publish_definition(actor=admin, definition_id=definition.id)

    def decide(self, order: "PlannedOrder", name: str, comment: str):
        """An approval decision of the plan: every pending task in turn approves (or the first one
        rejects), each by its own assignee, until the order leaves approval."""
        order_id = self.order_ids[order.key]
        while True:
            instance = approval_selectors.current_instance("orders.order", order_id)
            if instance is None or instance.state != "running":
                return
            task = instance.tasks.filter(state="pending").select_related("assignee").order_by("created_at").first()
            if task is None:
                return
            approval_services.decide_task(
                actor=task.assignee,
                task_id=task.id,
                decision="approve" if name == "approve" else "reject",
                comment=comment,
            )
            if name == "reject":
                return

    def create_unit(self, spec: data.OrgUnitSpec):
        self.units[spec.code] = account_services.create_org_unit(
            actor=None, code=spec.code, name=spec.name, parent=self.units.get(spec.parent)
        )

    def create_user(self, spec: data.UserSpec):
        self.users[spec.username] = account_services.create_user(
            actor=None,
            username=spec.username,
            password=spec.password,
            display_name=spec.display_name,
            email=f"{spec.username}@demo.example.com",
            roles=[spec.role],
            org_unit=self.units[spec.unit],
            phone=spec.phone,
        )

    def create_type(self, code: str, name: str, name_en: str):
        self.types[code] = masterdata_services.create_project_type(
            actor=self.users["admin"], code=code, name=name, name_en=name_en
        )

    def create_customer(self, spec: data.CustomerSpec):
        self.customers[spec.key] = masterdata_services.create_customer(
            actor=self.users["admin"],
            name=spec.name,
            uscc=spec.uscc,
            region=spec.region,
            grade=spec.grade,
            address=f"{spec.province}{spec.city if spec.city != spec.province else ''}{spec.address}",
            contacts=[{"name": spec.contact_name, "title": spec.contact_title, "phone": spec.contact_phone}],
        )

    def create_supplier(self, spec: data.SupplierSpec):
        masterdata_services.create_supplier(
            actor=self.users["admin"],
            name=spec.name,
            uscc=spec.uscc,
            kind=spec.kind,
            region=spec.region,
            contact_name=spec.contact_name,
            contact_phone=spec.contact_phone,
            qualification=spec.qualification,
        )

    def create_project(self, spec: data.ProjectSpec):
        customer = next(c for c in data.CUSTOMERS if c.key == spec.customer)
        self.projects[spec.code] = masterdata_services.create_project(
            actor=self.users["admin"],
            code=spec.code,
            name=spec.name,
            customer=self.customers[spec.customer],
            project_type=self.types[spec.type_code],
            region=customer.region,
            province=customer.province,
            city=customer.city,
            address=spec.address,
            latitude=spec.latitude,
            longitude=spec.longitude,
            manager=self.users[spec.manager],
        )

    # orders
    def create_order(self, order: PlannedOrder):
        customer = next(c for c in data.CUSTOMERS if c.key == order.project.customer)
        if order.supplier is None:
            description = f"业主：{customer.name}。工程地点：{customer.city}{order.project.address}。"
            description += f"承包范围：{SCOPE[order.project.type_code]}。"
        else:
            s = order.supplier
            description = (
                f"分包单位：{s.name}（统一社会信用代码 {s.uscc}，{s.qualification}）。"
                f"上级订单 {self.numbers[order.parent.key]}，背靠背条款随上级合同。"
            )
        created = order_services.create_order(
            actor=self.users[order.project.manager],
            project=self.projects[order.project.code],
            title=order.title,
            contract_amount=order.amount,
            estimated_cost=order.cost,
            kind=order.kind,
            tax_rate=order.tax_rate,
            description=description,
            parent_id=self.order_ids[order.parent.key] if order.parent else None,
        )
        self.order_ids[order.key] = created.id
        self.numbers[order.key] = created.number

    def actor_for(self, order: PlannedOrder, index: int):
        name = order.path[index]
        if name in ("approve", "reject"):
            return self.users["gm_wang" if order.amount > GM_THRESHOLD else "approver_li"]
        if name in ("start_execution", "request_acceptance"):
            return self.users[order.project.engineer]
        if name in ("start_settlement", "settle"):
            return self.users["fin_qian" if order.key % 3 else "fin_he"]
        if name == "cancel" and "sign" in order.path[:index]:
            return self.users["admin"]  # after signing only an administrator may cancel
        return self.users[order.project.manager]

    def transition(self, order: PlannedOrder, index: int, when: datetime):
        name = order.path[index]
        number = self.numbers[order.key]
        attachments = []
        facts = [
            f"Order: {number}",
            f"Project: {order.project.code}",
            f"Contract amount (CNY, VAT included): {order.amount:,.2f}",
            f"VAT rate: {order.tax_rate * 100:.0f}%",
            f"Date: {when.astimezone(LOCAL):%Y-%m-%d}",
        ]
        if name == "submit":
            self.submissions[order.key] += 1
            revision = self.submissions[order.key]
            pdf = pdf_document(f"Quotation, revision {revision}", facts)
            attachments.append(("quotation", inspect_upload(f"{number}-quotation-r{revision}.pdf", pdf)))
        elif name == "sign":
            pdf = pdf_document("Contract (signed and sealed by both parties)", [*facts, f"Contractor: {data.COMPANY}"])
            attachments.append(("signed_contract", inspect_upload(f"{number}-contract-signed.pdf", pdf)))
        elif name == "accept":
            pdf = pdf_document("Completion acceptance report", [*facts, "Result: accepted, quality qualified."])
            attachments.append(("acceptance_report", inspect_upload(f"{number}-acceptance-report.pdf", pdf)))
        elif name == "settle":
            pdf = pdf_document("Settlement statement", [*facts, "Retention: 3% of the settlement amount."])
            attachments.append(("settlement", inspect_upload(f"{number}-settlement.pdf", pdf)))
        comment = self.rng.choice(COMMENTS[name]) if name in COMMENTS else ""
        if name in ("approve", "reject"):
            self.decide(order, name, comment)
            return
        order_services.transition_order(
            actor=self.actor_for(order, index),
            order_id=self.order_ids[order.key],
            name=name,
            comment=comment,
            attachments=attachments,
        )


def _steps(plan: Plan, loader: _Loader) -> list[tuple[datetime, tuple, object]]:
    steps = []
    at = plan.setup_at
    rng = random.Random(plan.seed + 2)
    for i, fn in enumerate(loader.setup_steps()):
        at = _working_time(rng, at + timedelta(seconds=rng.uniform(20, 90)))
        steps.append((at, (0, i), fn))
    for order in plan.orders:
        steps.append((order.times[0], (1, order.key, 0), lambda o=order: loader.create_order(o)))
        for index in range(len(order.path)):
            when = order.times[index + 1]
            steps.append((when, (1, order.key, index + 1), lambda o=order, i=index, w=when: loader.transition(o, i, w)))
    steps.sort(key=lambda step: (step[0], step[1]))
    return steps


def database_status() -> tuple[int, bool]:
    """(number of active users, whether the demo's administrator exists)."""
    users = account_selectors.list_users(actor=None)
    return users.count(), users.filter(username=data.USERS[0].username).exists()


def load_demo(*, orders: int = 300, seed: int = 42, anchor: datetime | None = None) -> DemoSummary:
    """Load the demo company into an empty database, in one transaction: all of it or nothing."""
    started = time.monotonic()
    plan = build_plan(orders=orders, seed=seed, anchor=anchor)
    loader = _Loader(plan)
    steps = _steps(plan, loader)
    with transaction.atomic(), time_machine.travel(steps[0][0], tick=False) as clock:
        for when, _key, run in steps:
            clock.move_to(when, tick=False)
            run()
    audit.seal()  # the demo's history is in the chain before anyone looks (the relay would do it soon)
    _deliver_history(plan)
    return _summary(loader, plan, time.monotonic() - started)


def _deliver_history(plan: Plan) -> None:
    """Deliver the demo's events now, in this process (notifications, webhooks), rather than at the
    first start of `eoms run`, and mark read every notification about an event more than three days
    before the demo's present: someone signing in sees what waits for them, not a year of history
    as news. (With a broker, `eoms worker` delivers them instead, and nothing is marked.)"""
    from eoms.core.models import OutboxMessage
    from eoms.core.relay import InProcessTransport, relay_once
    from eoms.notifications.models import Notification

    if settings.BROKER_URL:
        return
    transport = InProcessTransport()
    while relay_once(transport, batch=500):
        pass
    old = OutboxMessage.objects.filter(created_at__lt=plan.anchor - timedelta(days=3)).values("message_id")
    # nosemgrep: eoms-write-outside-services -- the demo's made-up history: its old notifications were read
    Notification.objects.filter(read_at__isnull=True, message_id__in=old).update(read_at=timezone.now())


def _summary(loader: _Loader, plan: Plan, seconds: float) -> DemoSummary:
    admin = loader.users["admin"]
    counts = order_selectors.state_counts(actor=admin)
    return DemoSummary(
        users=len(loader.users),
        org_units=len(loader.units),
        customers=masterdata_selectors.list_customers(actor=admin).count(),
        projects=masterdata_selectors.list_projects(actor=admin).count(),
        suppliers=masterdata_selectors.list_suppliers(actor=admin).count(),
        orders=sum(c["count"] for c in counts.values()),
        by_state={state: c["count"] for state, c in counts.items()},
        by_level=dict(sorted(Counter(o.level for o in plan.orders).items())),
        overdue=len(order_selectors.overdue_orders(actor=admin)),
        attachments=sum(1 for o in plan.orders for n in o.path if n in ("submit", "sign", "accept", "settle")),
        audit_entries=AuditEntry.objects.count(),
        seconds=seconds,
    )
