"""The order summary (models.OrderSummary): kept by the services in the writes' own transactions,
recounted from scratch by `rebuild()`.

A bucket is (month created, project, region, type, state). What changes it:
- create: +1 order and its amount in the new order's bucket;
- a transition: -1 order and its amount in the old state's bucket, plus one ended stay of
  (now - stage_entered_at); +1 order and its amount in the new state's bucket;
- an amount or type change: the order's amount moves within its bucket, or the order moves buckets.

`bump()` is called after the write's audit entry: the audit chain head is then locked by this
transaction until it ends, so summary rows are only ever locked by one transaction at a time, and a
transaction that touches two buckets takes them in sorted order anyway.
"""

import functools
import zoneinfo
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

from django.db import IntegrityError, connection, transaction

from .models import Order, OrderHistory, OrderSummary

__all__ = ["zone", "month_of", "bucket", "transition_changes", "bump", "recount", "current", "rebuild"]

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
_sql: dict[str, str] = {}


def _update_sql() -> str:
    sql = _sql.get(connection.vendor)
    if sql is None:
        qn = connection.ops.quote_name
        meta = OrderSummary._meta
        adds = ", ".join(f"{qn(c)} = {qn(c)} + %s" for c in ("orders", "amount", "stays", "stay_us"))
        where = " AND ".join(f"{qn(meta.get_field(f).column)} = %s" for f in _FIELDS)
        sql = _sql[connection.vendor] = f"UPDATE {qn(meta.db_table)} SET {adds} WHERE {where}"  # noqa: S608
    return sql


def _key_params(key: Key) -> list:
    meta = OrderSummary._meta
    return [meta.get_field(f).get_db_prep_value(v, connection) for f, v in zip(_FIELDS, key, strict=True)]


def bump(changes: dict[Key, tuple[int, Decimal, int, int]]) -> None:
    """Add (orders, amount, stays, stay_us) to each bucket, in sorted bucket order; a bucket seen for
    the first time is inserted (a racing insert of the same bucket is retried as an update)."""
    sql = _update_sql()
    for key in sorted(changes, key=lambda k: (k[0], str(k[1]), k[2], k[3], k[4])):
        orders, amount, stays, us = changes[key]
        if not (orders or amount or stays or us):
            continue
        params = [orders, connection.ops.adapt_decimalfield_value(amount, 20, 2), stays, us, *_key_params(key)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            if cursor.rowcount:
                continue
        fields = dict(zip(_FIELDS, key, strict=True))
        fields["project_id"] = fields.pop("project")
        try:
            with transaction.atomic():
                OrderSummary.objects.create(**fields, orders=orders, amount=amount, stays=stays, stay_us=us)
        except IntegrityError:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)


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
    return {
        tuple(r[:5]): (int(r[5]), Decimal(r[6]).quantize(Decimal("0.01")), int(r[7]), int(r[8]))
        for r in rows
        if any(r[5:])
    }


def current() -> dict[Key, tuple[int, Decimal, int, int]]:
    """The summary as stored (zero buckets left out)."""
    rows = OrderSummary.objects.values_list(
        "month", "project_id", "region", "kind", "state", "orders", "amount", "stays", "stay_us"
    )
    return {tuple(r[:5]): tuple(r[5:]) for r in rows if any(r[5:])}


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
