"""The order summary (models.OrderSummary): kept by the services in the writes' own transactions,
recounted from scratch by `rebuild()`.

A bucket is (month created, project, region, type, state). What changes it:
- create: +1 order and its amount in the new order's bucket;
- a transition: -1 order and its amount in the old state's bucket, plus one ended stay of
  (now - stage_entered_at); +1 order and its amount in the new state's bucket;
- an amount or type change: the order's amount moves within its bucket, or the order moves buckets.

A write does not update its buckets' rows: `bump()` INSERTs its changes as rows of their own (one
statement for the two buckets of a transition), so two transactions writing orders of the same
bucket never wait for each other (an UPDATE of a shared bucket row held its lock until commit, and
every transition of one project in one month queued there: decision 0018). A bucket is therefore the
SUM of its rows; every reader sums. `compact()` merges a bucket's rows into one, in its own
transaction: the periodic job orders.compact_summary and, every COMPACT_AFTER rows a process has
written, right after a commit of that process.
"""

import functools
import logging
import zoneinfo
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Q, Sum

from .models import Order, OrderHistory, OrderSummary

__all__ = ["zone", "month_of", "bucket", "transition_changes", "bump", "compact", "recount", "current", "rebuild"]

log = logging.getLogger("eoms.orders.summary")

Key = tuple[date, object, str, str, str]  # month, project id, region, kind, state
ZERO = Decimal("0.00")


def month_of(moment: datetime) -> date:
    """The first day of the month `moment` falls in, in the configured time zone (settings.TIME_ZONE,
    whatever zone a request has activated)."""
    return moment.astimezone(zone()).date().replace(day=1)


@functools.cache
def zone():
    from django.conf import settings

    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def bucket(order: Order, state: str | None = None) -> Key:
    return (month_of(order.created_at), order.project_id, order.region, order.kind, state or order.state)


def _us(delta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def stay_us(order: Order, now: datetime) -> int:
    """How long the order has been in its current state at `now`, in microseconds."""
    return _us(now - order.stage_entered_at)


def transition_changes(order: Order, target: str, now: datetime) -> dict[Key, tuple[int, Decimal, int, int]]:
    """What moving `order` (as read, still in its old state) to `target` at `now` adds to the summary."""
    old, new = bucket(order), bucket(order, target)
    amount = order.contract_amount
    changes = {old: (-1, -amount, 1, stay_us(order, now))}
    o, a, s, u = changes.get(new, (0, ZERO, 0, 0))
    changes[new] = (o + 1, a + amount, s, u)
    return changes


def move_changes(order_id, before: tuple[Key, Decimal], after: tuple[Key, Decimal]) -> dict:
    """What changing an order from (bucket, amount) `before` to `after` adds to the summary. A change
    of type moves its ended stays too (read from its history), as a recount files them under the
    order's type."""
    changes: dict[Key, list] = defaultdict(lambda: [0, ZERO, 0, 0])
    changes[before[0]][:2] = [-1, -before[1]]
    changes[after[0]][0] += 1
    changes[after[0]][1] += after[1]
    if before[0] != after[0]:
        rows = OrderHistory.objects.filter(order_id=order_id).order_by("at", "id").values_list("at", "to_state")
        previous = None
        for at, state in rows:
            if previous is not None:
                us = _us(at - previous[0])
                for key, sign in ((before[0], -1), (after[0], 1)):
                    row = changes[(*key[:4], previous[1])]
                    row[2] += sign
                    row[3] += sign * us
            previous = (at, state)
    return {k: tuple(v) for k, v in changes.items()}


_FIELDS = ("month", "project", "region", "kind", "state")
_KEY_COLUMNS = ("month", "project_id", "region", "kind", "state")
_VALUE_COLUMNS = ("orders", "amount", "stays", "stay_us")
_sql: dict[tuple[str, int], str] = {}

COMPACT_AFTER = 500  # rows a process bumps before it compacts after a commit
_written = 0


def _insert_sql(rows: int) -> str:
    sql = _sql.get((connection.vendor, rows))
    if sql is None:
        qn = connection.ops.quote_name
        columns = ", ".join(qn(c) for c in (*_KEY_COLUMNS, *_VALUE_COLUMNS))
        marks = ", ".join(["(" + ", ".join(["%s"] * 9) + ")"] * rows)
        sql = _sql[(connection.vendor, rows)] = (
            f"INSERT INTO {qn(OrderSummary._meta.db_table)} ({columns}) VALUES {marks}"  # noqa: S608
        )
    return sql


def _key_params(key: Key) -> list:
    meta = OrderSummary._meta
    return [meta.get_field(f).get_db_prep_value(v, connection) for f, v in zip(_FIELDS, key, strict=True)]


def bump(changes: dict[Key, tuple[int, Decimal, int, int]]) -> None:
    """Add (orders, amount, stays, stay_us) to each bucket: one INSERT of a row per bucket changed, in
    the caller's transaction. No row is locked, so writers of the same bucket do not queue."""
    global _written
    params = []
    for key, (orders, amount, stays, us) in changes.items():
        if orders or amount or stays or us:
            params += [*_key_params(key), orders, connection.ops.adapt_decimalfield_value(amount, 20, 2), stays, us]
    if not params:
        return
    rows = len(params) // 9
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(rows), params)
    _written += rows
    if _written >= COMPACT_AFTER:
        _written = 0
        transaction.on_commit(_compact_quietly)


def _compact_quietly() -> None:
    try:
        compact()
    except Exception:  # the write it follows is committed; the periodic job compacts later
        log.exception("compacting the order summary after a commit failed")


def compact(limit: int = 500) -> int:
    """Merge the rows of buckets that have several into one row each (a bucket summing to nothing
    is removed): at most `limit` buckets per transaction, until none is left. Safe beside writers
    (they only insert) and beside another compaction: the rows are locked before they are summed,
    skipping rows another transaction holds (a writer's row not yet committed, or rows another
    compaction is merging), so a compaction never waits and cannot deadlock — on MariaDB, waiting
    compactions whose scans locked rows in different orders deadlocked in CI. What it skipped is
    merged by a later pass. Answers how many buckets were merged."""
    merged = 0
    while True:
        with transaction.atomic():
            keys = list(
                OrderSummary.objects.values_list(*_KEY_COLUMNS)
                .annotate(n=Count("id"))
                .filter(n__gt=1)
                .order_by()[:limit]
            )
            if not keys:
                return merged
            wanted = Q()
            for key in keys:
                wanted |= Q(**dict(zip(_KEY_COLUMNS, key[:5], strict=True)))
            skip = connection.features.has_select_for_update_skip_locked
            rows = list(OrderSummary.objects.select_for_update(skip_locked=skip).filter(wanted).order_by("id"))
            if not rows:  # everything it found is being merged or written by others right now
                return merged
            sums: dict[tuple, list] = defaultdict(lambda: [0, ZERO, 0, 0])
            for row in rows:
                into = sums[tuple(getattr(row, c) for c in _KEY_COLUMNS)]
                into[0] += row.orders
                into[1] += row.amount
                into[2] += row.stays
                into[3] += row.stay_us
            OrderSummary.objects.filter(pk__in=[row.pk for row in rows]).delete()
            OrderSummary.objects.bulk_create(
                [
                    OrderSummary(**dict(zip(_KEY_COLUMNS, key, strict=True)), orders=o, amount=a, stays=st, stay_us=u)
                    for key, (o, a, st, u) in sums.items()
                    if o or a or st or u
                ]
            )
            merged += len(sums)
        if len(keys) < limit:
            return merged


def recount(*, projects=None, stays_only: bool = False) -> dict[Key, tuple[int, Decimal, int, int]]:
    """The summary counted from scratch from the orders and their history (zero buckets left out),
    of the orders of `projects` (ids; None: all); `stays_only` leaves the orders and amounts at zero.
    One statement on PostgreSQL, a walk over the rows elsewhere."""
    if connection.vendor == "postgresql":
        return _recount_postgresql(projects, stays_only)
    out: dict[Key, list] = defaultdict(lambda: [0, ZERO, 0, 0])
    orders = {}
    rows = Order.objects.values_list("id", "created_at", "project_id", "region", "kind", "state", "contract_amount")
    history = OrderHistory.objects.values_list("order_id", "at", "to_state")
    if projects is not None:
        rows = rows.filter(project_id__in=projects)
        history = history.filter(order__project_id__in=projects)
    for oid, created, project, region, kind, state, amount in rows.order_by().iterator(chunk_size=20000):
        month = month_of(created)
        orders[oid] = (month, project, region, kind)
        if not stays_only:
            row = out[(month, project, region, kind, state)]
            row[0] += 1
            row[1] += amount
    last = (None, None, None)
    for oid, at, to_state in history.order_by("order_id", "at", "id").iterator(chunk_size=20000):
        last_oid, last_at, last_state = last
        if oid == last_oid:
            row = out[(*orders[oid], last_state)]
            row[2] += 1
            row[3] += _us(at - last_at)
        last = (oid, at, to_state)
    return {k: tuple(v) for k, v in out.items() if any(v)}


# Months in the configured time zone; a stay is the time from one history row of an order to its next.
_RECOUNT_PG = """
WITH o AS (
    SELECT id, (date_trunc('month', created_at AT TIME ZONE %(tz)s))::date AS month,
           project_id, region, kind, state, contract_amount
    FROM orders_order WHERE %(all)s OR project_id = ANY(%(projects)s::uuid[])
), counts AS (
    SELECT month, project_id, region, kind, state, count(*) AS orders, sum(contract_amount) AS amount
    FROM o WHERE NOT %(stays_only)s GROUP BY 1, 2, 3, 4, 5
), h AS (
    SELECT order_id, to_state, at, lead(at) OVER (PARTITION BY order_id ORDER BY at, id) AS next_at
    FROM orders_orderhistory WHERE %(all)s OR order_id IN (SELECT id FROM o)
), stays AS (
    SELECT o.month, o.project_id, o.region, o.kind, h.to_state AS state, count(*) AS stays,
           sum(((extract(epoch FROM h.next_at) - extract(epoch FROM h.at)) * 1000000)::bigint) AS stay_us
    FROM h JOIN o ON o.id = h.order_id WHERE h.next_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5
)
SELECT month, project_id, region, kind, state,
       coalesce(c.orders, 0), coalesce(c.amount, 0), coalesce(s.stays, 0), coalesce(s.stay_us, 0)
FROM counts c FULL JOIN stays s USING (month, project_id, region, kind, state)
"""


def _recount_postgresql(projects, stays_only: bool) -> dict[Key, tuple[int, Decimal, int, int]]:
    from django.conf import settings

    params = {
        "tz": settings.TIME_ZONE,
        "all": projects is None,
        "projects": [str(p) for p in projects or ()],
        "stays_only": stays_only,
    }
    with connection.cursor() as cursor:
        cursor.execute(_RECOUNT_PG, params)
        rows = cursor.fetchall()
    return _nonzero(rows)


def _nonzero(rows) -> dict[Key, tuple[int, Decimal, int, int]]:
    """Rows of (bucket, orders, amount, stays, stay_us) as the summary's dict, zero buckets left out.
    SQLite sums amounts as floats: a bucket back at nothing may sum to -1e-10, zero once in cents."""
    summed = {r[:5]: (int(r[5]), Decimal(r[6]).quantize(Decimal("0.01")) + 0, int(r[7]), int(r[8])) for r in rows}
    return {tuple(key): values for key, values in summed.items() if any(values)}


def current() -> dict[Key, tuple[int, Decimal, int, int]]:
    """The summary as stored, each bucket's rows summed (zero buckets left out)."""
    rows = (
        OrderSummary.objects.values_list(*_KEY_COLUMNS)
        .annotate(o=Sum("orders"), a=Sum("amount"), s=Sum("stays"), u=Sum("stay_us"))
        .order_by()
    )
    return _nonzero(rows)


@transaction.atomic
def rebuild() -> int:
    """Replace the summary with a recount; answers the number of buckets written. Exact while
    orders are written meanwhile: on PostgreSQL the summary table is locked first (see below); SQLite
    takes its write lock at the start of the transaction (IMMEDIATE); on MariaDB run it when orders
    are quiet."""
    if connection.vendor == "postgresql":
        # Writers wait at their bump (their order rows not yet committed, so not counted here) until
        # the rebuilt summary is committed, and then add to it; writers that bumped before wait here.
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(OrderSummary._meta.db_table)} IN EXCLUSIVE MODE")
    counted = recount()
    OrderSummary.objects.all().delete()
    OrderSummary.objects.bulk_create(
        [
            OrderSummary(
                month=k[0],
                project_id=k[1],
                region=k[2],
                kind=k[3],
                state=k[4],
                orders=v[0],
                amount=v[1],
                stays=v[2],
                stay_us=v[3],
            )
            for k, v in counted.items()
        ],
        batch_size=2000,
    )
    return len(counted)
