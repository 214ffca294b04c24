"""Every read of orders starts from the actor's scope: what they may not see does not exist."""

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import F, IntegerField, Q, QuerySet, Sum, Value
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.translation import gettext as _

from eoms.accounts.roles import Role
from eoms.accounts.selectors import project_ids_in_scope, roles_of
from eoms.core.rows import Select

from .errors import InvalidCursor, OrderNotFound, OrderPermissionDenied
from .models import Order, OrderHistory, OrderSummary
from .policies import can_update_order, can_upload_attachment
from .state import OrderState

__all__ = [
    "OrderFilters",
    "ORDERING",
    "list_orders",
    "encode_cursor",
    "after_cursor",
    "access_order",
    "order_timeline",
    "order_history",
    "order_tree",
    "state_counts",
    "overdue_orders",
    "get_order_by_number",
    "stage_deadlines_before",
    "DIMENSIONS",
    "SummaryFilters",
    "order_figures",
    "stage_times",
]

# ordering parameter -> (field, descending). The id follows in the same direction, so every ordering
# is total and one index (field, id) serves it both ways; keyset pages continue from (value, id).
SORTS = {
    "created": ("created_at", False),
    "amount": ("contract_amount", False),
    "deadline": ("stage_deadline", False),
    "number": ("number", False),
    "updated": ("updated_at", False),
}
SORTS.update({f"-{k}": (field, True) for k, (field, _) in list(SORTS.items())})
ORDERING = {k: ("-" if desc else "") + field for k, (field, desc) in SORTS.items()}
NULLABLE = {"stage_deadline"}  # orders without a deadline come last, in either direction
CURSOR_SALT = "eoms.orders.list-cursor"


@dataclass
class OrderFilters:
    state: list[str] | None = None
    project: str | None = None
    customer: str | None = None
    region: str | None = None
    kind: str | None = None
    stage_owner: str | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    created_from: date | None = None
    created_to: date | None = None
    updated_from: date | None = None
    updated_to: date | None = None
    overdue: bool | None = None
    parent: str | None = None
    q: str = ""
    ordering: str = "-created"


def _scoped(actor) -> QuerySet[Order]:
    qs = Order.objects.all()
    scope = project_ids_in_scope(actor)
    if scope is not None:
        qs = qs.filter(project_id__in=scope)
    return qs


def _day_start(d: date) -> datetime:
    return timezone.make_aware(datetime.combine(d, time.min))


def list_orders(*, actor, filters: OrderFilters | None = None) -> QuerySet[Order]:
    f = filters or OrderFilters()
    qs = _scoped(actor).select_related("project", "customer", "stage_owner")
    if f.state:
        qs = qs.filter(state__in=f.state)
    qs = _equal(
        qs,
        project_id=f.project,
        customer_id=f.customer,
        region=f.region,
        kind=f.kind,
        stage_owner_id=f.stage_owner,
        parent_id=f.parent,
    )
    if f.amount_min is not None:
        qs = qs.filter(contract_amount__gte=f.amount_min)
    if f.amount_max is not None:
        qs = qs.filter(contract_amount__lte=f.amount_max)
    if f.created_from:
        qs = qs.filter(created_at__gte=_day_start(f.created_from))
    if f.created_to:
        qs = qs.filter(created_at__lt=_day_start(f.created_to) + timezone.timedelta(days=1))
    if f.updated_from:
        qs = qs.filter(updated_at__gte=_day_start(f.updated_from))
    if f.updated_to:
        qs = qs.filter(updated_at__lt=_day_start(f.updated_to) + timezone.timedelta(days=1))
    if f.overdue is not None:
        late = Q(stage_deadline__lt=timezone.now()) & ~Q(state__in=OrderState.terminal())
        qs = qs.filter(late) if f.overdue else qs.exclude(late)
    q = (f.q or "").replace("\x00", "").strip()[:100]  # PostgreSQL refuses NUL in a query
    if q:
        qs = qs.filter(
            Q(number__icontains=q)
            | Q(title__icontains=q)
            | Q(project__name__icontains=q)
            | Q(customer__name__icontains=q)
        )
    return qs.order_by(*_order_by(f.ordering))


def _order_by(ordering: str) -> tuple:
    field, desc = SORTS.get(ordering, SORTS["-created"])
    if field in NULLABLE:
        key = F(field).desc(nulls_last=True) if desc else F(field).asc(nulls_last=True)
    else:  # no NULLS LAST on a NOT NULL column: PostgreSQL would no longer read it from an index backwards
        key = f"-{field}" if desc else field
    return key, "-id" if desc else "id"


def encode_cursor(ordering: str, order: Order) -> str:
    """An opaque, signed position after `order` in `ordering`: its sort value and id."""
    field, _desc = SORTS.get(ordering, SORTS["-created"])
    value = getattr(order, field)
    if isinstance(value, datetime):
        value = value.isoformat()
    elif value is not None:
        value = str(value)
    return signing.dumps([ordering, value, str(order.pk)], salt=CURSOR_SALT, compress=True)


def after_cursor(qs: QuerySet[Order], ordering: str, cursor: str) -> QuerySet[Order]:
    """`qs` (ordered by `ordering`) from the row after `cursor` on: keyset pagination, constant cost
    per page whatever the depth, stable under inserts. The condition is written as
    `field <= v AND (field < v OR id < i)` (not the plain OR of the two) so the database bounds its
    index scan by the first part. InvalidCursor for a cursor not made here or made for another ordering."""
    try:
        made_for, raw, key = signing.loads(cursor, salt=CURSOR_SALT)
        key = uuid.UUID(key)
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidCursor(_("This cursor is not valid: start again from the first page."))
    if made_for != ordering:
        raise InvalidCursor(
            _("This cursor was made for ordering %(made)s, not %(asked)s.") % {"made": made_for, "asked": ordering}
        )
    field, desc = SORTS[ordering]
    past, id_past = ("lt", "lt") if desc else ("gt", "gt")
    if raw is None:  # in the tail of rows without a value (nullable fields: nulls last)
        return qs.filter(**{f"{field}__isnull": True, f"id__{id_past}": key})
    model_field = Order._meta.get_field(field)
    try:
        value = model_field.to_python(raw)
    except ValidationError:
        raise InvalidCursor(_("This cursor is not valid: start again from the first page."))
    reach = "lte" if desc else "gte"
    condition = Q(**{f"{field}__{reach}": value}) & (Q(**{f"{field}__{past}": value}) | Q(**{f"id__{id_past}": key}))
    if field in NULLABLE:
        condition |= Q(**{f"{field}__isnull": True})
    return qs.filter(condition)


def access_order(actor, order_id, action: str = "view", *, for_update: bool = False) -> Order:
    """The order if the actor may see it, else OrderNotFound (the same for missing and not yours).
    For "change" or "attach" a visible order the actor may not change answers OrderPermissionDenied.
    Read with a prepared statement: every transition starts here."""
    # With for_update the order's row alone is locked, without joins: PostgreSQL refuses FOR UPDATE
    # on the nullable side of outer joins, and MariaDB has no FOR UPDATE OF to narrow it. The scope
    # is part of the statement, so nothing outside it is ever locked.
    scope = project_ids_in_scope(actor)
    if scope is None:
        order = (_lock_order if for_update else _read_order).first(order_id)
    else:
        order = (_lock_scoped if for_update else _read_scoped).first(order_id, sorted(scope, key=str))
    if order is None:
        order = _via_approval_task(actor, order_id, for_update=for_update)
        if order is None:
            raise OrderNotFound(_("No such order."))
    if action == "change" and not can_update_order(actor, order):
        raise OrderPermissionDenied(
            _("You may not edit order %(number)s in state %(state)s.") % {"number": order.number, "state": order.state}
        )
    if action == "attach" and not can_upload_attachment(actor, order):
        raise OrderPermissionDenied(
            _("You may not add files to order %(number)s at this stage.") % {"number": order.number}
        )
    return order


_SHOWN = ("project", "project__manager", "customer", "stage_owner", "parent")  # the manager: owner of most stages
_read_order = Select(Order, where=("id",), related=_SHOWN)
_read_scoped = Select(Order, where=("id", "project__in"), related=_SHOWN)
_lock_order = Select(Order, where=("id",), lock=True)
_lock_scoped = Select(Order, where=("id", "project__in"), lock=True)


def _via_approval_task(actor, order_id, *, for_update: bool):
    """An approver sees an order they hold (or held) an approval task on, even outside their
    projects: a general manager decides orders of projects they are not a member of."""
    from eoms.approvals.selectors import has_task_on

    try:
        key = uuid.UUID(str(order_id))
    except ValueError:
        return None
    if not has_task_on(actor, "orders.order", key):
        return None
    qs = (
        Order.objects.select_for_update()
        if for_update
        else Order.objects.select_related("project", "customer", "stage_owner", "parent")
    )
    return qs.filter(pk=key).first()


def get_order_by_number(actor, number: str) -> Order:
    order = _scoped(actor).filter(number=number).first()
    if order is None:
        raise OrderNotFound(_("No such order."))
    return order


def order_history(order: Order) -> list[OrderHistory]:
    """The order's history rows with their actors, oldest first, without their attachments (the
    API reads those once for the whole order): a prepared statement, since every transition's
    answer includes it."""
    return _history.all(order.pk)


_history = Select(OrderHistory, where=("order",), related=("actor",), order_by=("at", "id"))


def order_timeline(order: Order) -> list[OrderHistory]:
    return list(order.history.select_related("actor").prefetch_related("attachments").order_by("at", "id"))


def order_tree(actor, order: Order) -> dict:
    """The subtree under `order` (children the actor may see), as nested dicts, in two queries per level."""
    levels = [[order]]
    while levels[-1]:
        ids = [o.id for o in levels[-1]]
        levels.append(list(_scoped(actor).filter(parent_id__in=ids).order_by("number")))
    nodes = {o.id: {"order": o, "children": []} for level in levels for o in level}
    for level in levels[1:]:
        for child in level:
            nodes[child.parent_id]["children"].append(nodes[child.id])
    return nodes[order.id]


def state_counts(*, actor) -> dict[str, dict]:
    """Orders and their amounts by state, of the orders the actor sees (the home page): read from the
    maintained order summary (the same figures as counting the orders, without reading them)."""
    qs = OrderSummary.objects.all()  # a bucket is the sum of its rows (some negative): no per-row filter
    scope = project_ids_in_scope(actor)
    if scope is not None:
        qs = qs.filter(project_id__in=scope)
    rows = qs.values("state").annotate(n=Sum("orders"), amount=Sum("amount")).order_by()
    counts = {s: {"count": 0, "amount": Decimal("0.00")} for s in OrderState.values}
    for row in rows:
        counts[row["state"]] = {"count": row["n"], "amount": _cents(row["amount"])}
    return counts


def overdue_orders(*, actor) -> QuerySet[Order]:
    return list_orders(actor=actor, filters=OrderFilters(overdue=True, ordering="deadline"))


def stage_deadlines_before(moment: datetime) -> QuerySet[Order]:
    """Every open order (not settled or cancelled) of the whole company whose stage deadline is at
    or before `moment`, by deadline then id (a keyset to page on). No actor: this is the read of the
    periodic jobs that remind of deadlines (the system acting, not a user); never hand its rows to a
    user without their own selector's scope."""
    return (
        Order.objects.filter(stage_deadline__isnull=False, stage_deadline__lte=moment)
        .exclude(state__in=OrderState.terminal())
        .order_by("stage_deadline", "id")
    )


# ------------------------------------------------------------------------------------- dashboard figures

DIMENSIONS = ("month", "state", "region", "kind", "project")


@dataclass
class SummaryFilters:
    month_from: date | None = None  # months are those of the orders' creation, in settings.TIME_ZONE
    month_to: date | None = None
    project: str | None = None
    region: str | None = None
    kind: str | None = None


def _month_start(d: date) -> date:
    return d.replace(day=1)


def order_figures(
    *, actor, groupings: list[tuple[str, ...]], filters: SummaryFilters | None = None, live: bool = False
) -> list[list[dict]]:
    """Orders in the actor's scope counted by each grouping (a tuple of DIMENSIONS): for each, dicts
    with those keys plus `orders` and `amount`, ordered by the keys. One query, grouped by every
    dimension asked for, rolled up here: from the maintained summary, or with `live` from a scan of
    the orders themselves (the same figures). On PostgreSQL the summary's few rows are summed by
    every grouping at once (GROUPING SETS); a live scan of the orders is one plain GROUP BY at the
    finest level, which PostgreSQL runs in parallel (GROUPING SETS it does not), told by the
    statistics of migration orders.0009 that the groups are few (decision 0022)."""
    f = filters or SummaryFilters()
    dims = tuple(d for d in DIMENSIONS if any(d in g for g in groupings))
    if live:
        qs = Order.objects.order_by()
        scope = figures_scope(actor)
        if scope is not None:
            qs = qs.filter(project_id__in=scope)
        if f.month_from:
            qs = qs.filter(created_at__gte=_month_moment(_month_start(f.month_from)))
        if f.month_to:
            qs = qs.filter(created_at__lt=_month_moment(_next_month(f.month_to)))
        qs = _equal(qs, project_id=f.project, region=f.region, kind=f.kind)
        fields = {"month": "created_month", "project": "project_id"}
        qs = qs.annotate(created_month=TruncMonth("created_at", tzinfo=_zone())) if "month" in dims else qs
        qs = qs.annotate(_one=Value(1, output_field=IntegerField()))
        counted, amounts = "_one", "contract_amount"
    else:
        qs = _summary(actor, f)  # a bucket is the sum of its rows: groups summing to no order are left out below
        fields = {"project": "project_id"}
        counted, amounts = "orders", "amount"
    columns = [fields.get(d, d) for d in dims]
    sums: list[dict] = [defaultdict(lambda: [0, Decimal(0)]) for _ in groupings]
    # Each row: (the indexes of the groupings it adds to, dimension values, count, amount).
    if connection.vendor == "postgresql" and not live:
        rows = _grouping_sets(qs.order_by().values_list(*columns, counted, amounts), dims, groupings)
    else:  # each group at the finest level adds to every grouping
        grouped = qs.values_list(*columns).annotate(n=Sum(counted), total=Sum(amounts)).order_by()
        everywhere = range(len(groupings))
        rows = ((everywhere, r[:-2], r[-2], r[-1]) for r in grouped)
    zone, months = _zone(), {}
    for targets, values, n, total in rows:
        if not n and not total:
            continue
        values = dict(zip(dims, values, strict=True))
        month = values.get("month")
        if isinstance(month, datetime):  # live: the month's start, local (naive from a raw PostgreSQL read)
            if month not in months:
                months[month] = (timezone.localtime(month, zone) if timezone.is_aware(month) else month).date()
            values["month"] = months[month]
        n, total = int(n), Decimal(total or 0)
        for i in targets:
            bucket = sums[i][tuple(values[d] for d in groupings[i])]
            bucket[0] += n
            bucket[1] += total
    return [
        [
            {**dict(zip(grouping, key, strict=True)), "orders": n, "amount": _cents(total)}
            for key, (n, total) in sorted(into.items(), key=lambda item: tuple(str(k) for k in item[0]))
        ]
        for grouping, into in zip(groupings, sums, strict=True)
    ]


def _grouping_sets(qs, dims, groupings):
    """PostgreSQL sums each grouping at once (GROUP BY GROUPING SETS) over the rows of `qs` (the
    dimension columns, then the count and the amount columns): ((grouping index,), dimension values,
    count, amount) per group, instead of every bucket rolled up here."""
    inner, params = qs.query.sql_with_params()
    names = [f"c{i}" for i in range(len(dims))]
    sets = ", ".join("(" + ", ".join(names[dims.index(d)] for d in g) + ")" for g in groupings)
    masks = {}
    for i, g in enumerate(groupings):
        masks[sum(1 << (len(dims) - 1 - j) for j, d in enumerate(dims) if d not in g)] = i
    sql = (
        f"SELECT {', '.join(names)}, sum(n), sum(amount), GROUPING({', '.join(names)}) "  # noqa: S608
        f"FROM ({inner}) AS s ({', '.join(names)}, n, amount) GROUP BY GROUPING SETS ({sets})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            yield (masks[row[-1]],), row[: len(dims)], row[-3], row[-2]


def stage_times(*, actor, filters: SummaryFilters | None = None, live: bool = False) -> dict[str, dict]:
    """Per state, the stays in it that have ended (an order entered the state and left it): how
    many and their total length in microseconds; from the summary, or with `live` from the orders'
    history (the same figures, a walk over every history row in scope)."""
    f = filters or SummaryFilters()
    out = {s: {"stays": 0, "stay_us": 0} for s in OrderState.values}
    if live:
        from . import summary

        months = (
            _month_start(f.month_from) if f.month_from else None,
            _month_start(f.month_to) if f.month_to else None,
        )
        for key, (_o, _a, stays, us) in summary.recount(projects=figures_scope(actor), stays_only=True).items():
            month, project, region, kind, state = key
            if (months[0] and month < months[0]) or (months[1] and month > months[1]):
                continue
            if (f.project and str(project) != str(f.project)) or (f.region and region != f.region):
                continue
            if f.kind and kind != f.kind:
                continue
            out[state]["stays"] += stays
            out[state]["stay_us"] += us
        return out
    rows = _summary(actor, f).values("state").annotate(n=Sum("stays"), us=Sum("stay_us"))
    for row in rows:
        out[row["state"]] = {"stays": row["n"], "stay_us": row["us"]}
    return out


def figures_scope(actor) -> set | None:
    """Projects whose figures `actor` sees (None: all): their order scope, and every project for
    finance, who answer for the company's figures (they see the orders of their projects only)."""
    if Role.FINANCE in roles_of(actor):
        return None
    return project_ids_in_scope(actor)


def _cents(value) -> Decimal:
    # SQLite sums decimals as floats of its own: back to two places (amounts of up to 16 digits).
    return Decimal(value or 0).quantize(Decimal("0.01"))


def _summary(actor, f: SummaryFilters) -> QuerySet[OrderSummary]:
    qs = OrderSummary.objects.all()
    scope = figures_scope(actor)
    if scope is not None:
        qs = qs.filter(project_id__in=scope)
    if f.month_from:
        qs = qs.filter(month__gte=_month_start(f.month_from))
    if f.month_to:
        qs = qs.filter(month__lte=_month_start(f.month_to))
    return _equal(qs, project_id=f.project, region=f.region, kind=f.kind)


def _equal(qs, **values):
    """`qs` filtered on each field whose value is given (not None or empty)."""
    given = {k: v for k, v in values.items() if v}
    return qs.filter(**given) if given else qs


def _zone():
    from . import summary

    return summary.zone()


def _month_moment(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=_zone())


def _next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)
