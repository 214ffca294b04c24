"""Prepared statements for the hottest reads and writes: audit entries, outbox messages, the rows
of an approval decision.

The ORM compiles a statement anew on every call; on the write path of a decision compiling costs
several times what the database does (a three-table lookup: 0.8 ms to compile, 0.1 ms to run;
profile in bench/README.md, "approvals"). These helpers build their SQL once per database vendor
from the model's own metadata and go through the fields' own conversions, so what they write and
read is exactly what the ORM would: defaults, `auto_now`, JSON, UUIDs, decimals, time zones.

- `Insert(Model)`: one row (answering its primary key: RETURNING where the database has it, else
  the cursor's last id), a model object, or many rows in one round trip.
- `Get(Model, where=(...), related=(...), lock=...)`: one row by equality on some fields, with
  forward foreign keys joined and cached on the object, as `select_related(...).filter(...).first()`.
- `Values(Model, fields=(...), where=(...), order_by=(...))`: tuples, as `values_list(...)`.
- `Update(Model, set=(...), where=(...), increment=(...))`: as `filter(...).update(...)`, answering
  the number of rows changed (0 is how a compare-and-set learns it lost).

Identifiers in the SQL come from model metadata through the backend's quote_name; every value is a
parameter (hence the S608 exemptions).
"""

from django.core.exceptions import ValidationError
from django.db import connections, router
from django.db.models import AutoField, BigAutoField, SmallAutoField
from django.utils import timezone

__all__ = ["Insert", "Get", "Values", "Update"]

_AUTO = (AutoField, BigAutoField, SmallAutoField)


class Insert:
    """`Insert(Model)(**values)` writes one row, `.save(obj)` one model object, `.many([values, ...])`
    several rows in one round trip.
    Unknown names raise TypeError, as Model(**values) would."""

    def __init__(self, model):
        self.model = model
        self._fields = None
        self._sql: dict[str, str] = {}

    @property
    def fields(self):
        if self._fields is None:
            self._fields = [f for f in self.model._meta.concrete_fields if not isinstance(f, _AUTO)]
            self._names = {f.attname for f in self._fields} | {f.name for f in self._fields}
        return self._fields

    def _statement(self, connection, returning: bool) -> str:
        key = (connection.vendor, returning)
        sql = self._sql.get(key)
        if sql is None:
            qn = connection.ops.quote_name
            columns = ", ".join(qn(f.column) for f in self.fields)
            marks = ", ".join(["%s"] * len(self.fields))
            sql = f"INSERT INTO {qn(self.model._meta.db_table)} ({columns}) VALUES ({marks})"
            if returning:
                sql += f" RETURNING {qn(self.model._meta.pk.column)}"
            self._sql[key] = sql
        return sql

    def _params(self, values: dict, connection, now) -> list:
        unknown = set(values) - self._names
        if unknown:
            raise TypeError(f"{self.model.__name__} has no field(s) {', '.join(sorted(unknown))}")
        params = []
        for f in self.fields:
            if f.attname in values:
                value = values[f.attname]
            elif f.name in values:
                value = values[f.name]
                if f.is_relation and value is not None:
                    value = getattr(value, f.target_field.attname)
            elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                value = now
            else:
                value = f.get_default()
            params.append(f.get_db_prep_save(value, connection))
        return params

    def __call__(self, **values):
        """Write one row; its primary key (given or generated)."""
        connection = connections[router.db_for_write(self.model)]
        pk = self.model._meta.pk
        generated = isinstance(pk, _AUTO)
        returning = generated and connection.features.can_return_columns_from_insert
        with connection.cursor() as cursor:
            cursor.execute(self._statement(connection, returning), self._params(values, connection, timezone.now()))
            if not generated:
                return values.get(pk.attname, values.get(pk.name))
            if returning:
                return cursor.fetchone()[0]
            return connection.ops.last_insert_id(cursor, self.model._meta.db_table, pk.column)

    def save(self, obj):
        """Insert the model object `obj` as `obj.save(force_insert=True)` would, for plain rows (no
        signals, no file fields): `auto_now` fields are set on it, it gets its primary key and
        counts as saved."""
        now = timezone.now()
        for f in self.fields:
            if getattr(f, "auto_now", False) or (getattr(f, "auto_now_add", False) and getattr(obj, f.attname) is None):
                setattr(obj, f.attname, now)
        obj.pk = self(**{f.attname: getattr(obj, f.attname) for f in self.fields})
        obj._state.adding = False
        obj._state.db = router.db_for_write(self.model)
        return obj

    def many(self, rows: list[dict]) -> None:
        """Write several rows in one round trip (executemany); nothing is answered."""
        if not rows:
            return
        connection = connections[router.db_for_write(self.model)]
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.executemany(self._statement(connection, False), [self._params(r, connection, now) for r in rows])


class _Prepared:
    """The statement of one model, built on first use for each database vendor."""

    def __init__(self, model):
        self.model = model
        self._plans: dict[str, tuple] = {}

    def plan(self, connection) -> tuple:
        plan = self._plans.get(connection.vendor)
        if plan is None:
            plan = self._plans[connection.vendor] = self.build(connection, connection.ops.quote_name, self.model._meta)
        return plan

    def build(self, connection, qn, meta) -> tuple:
        raise NotImplementedError


def _where(conditions, qn, prefix: str = "") -> str:
    return " AND ".join(f"{prefix}{qn(f.column)} = %s" for f in conditions)


def _readers(fields, alias: str, connection) -> list:
    """Each field's column with the converters the ORM would apply to it (backend's, then field's)."""
    readers = []
    for f in fields:
        col = f.get_col(alias)
        readers.append((col, connection.ops.get_db_converters(col) + col.get_db_converters(connection)))
    return readers


def _convert(values, readers, connection) -> list:
    out = []
    for value, (col, converters) in zip(values, readers, strict=True):
        for converter in converters:
            value = converter(value, col, connection)
        out.append(value)
    return out


def _prep(fields, values, connection) -> list | None:
    """The values as the database takes them (a related object by its key), or None when one cannot
    be (a malformed UUID)."""
    try:
        return [
            f.get_db_prep_value(getattr(v, "pk", v) if f.is_relation else v, connection, prepared=False)
            for f, v in zip(fields, values, strict=True)
        ]
    except (ValidationError, ValueError, TypeError):
        return None


class Get(_Prepared):
    """`Get(Task, where=("id", "assignee"), related=("step",))(task_id, user_id)`: the object or None.

    `where` names fields of the model compared for equality with the call's values, in order; a
    value its field cannot take (a malformed UUID) finds nothing, as a lookup would not; None never
    matches (no IS NULL here). `related` names forward foreign keys (one level) read in the same
    statement (LEFT JOIN where nullable) and cached on the object. `lock`: the model's own row is
    locked until the transaction ends (FOR UPDATE OF it alone where the database can say so; else a
    narrow locking read comes first, so the joined rows are never locked)."""

    def __init__(self, model, *, where: tuple[str, ...], related: tuple[str, ...] = (), lock: bool = False):
        super().__init__(model)
        self.where = where
        self.related = related
        self.lock = lock

    def build(self, connection, qn, meta):
        parts = [(None, self.model, "t0")]
        joins = []
        for i, name in enumerate(self.related, start=1):
            fk = meta.get_field(name)
            alias, target = f"t{i}", fk.related_model
            joins.append(
                f"{'LEFT OUTER JOIN' if fk.null else 'INNER JOIN'} {qn(target._meta.db_table)} {alias} "
                f"ON t0.{qn(fk.column)} = {alias}.{qn(fk.target_field.column)}"
            )
            parts.append((fk, target, alias))
        columns, groups = [], []
        for fk, model, alias in parts:
            fields = list(model._meta.concrete_fields)
            columns += [f"{alias}.{qn(f.column)}" for f in fields]
            groups.append((fk, model, [f.attname for f in fields], fields.index(model._meta.pk), len(fields)))
        readers = _readers([f for _fk, model, _a in parts for f in model._meta.concrete_fields], "t0", connection)
        conditions = [meta.get_field(name) for name in self.where]
        sql = f"SELECT {', '.join(columns)} FROM {qn(meta.db_table)} t0 {' '.join(joins)} WHERE "
        sql += _where(conditions, qn, "t0.")
        lock_sql = None
        if self.lock and connection.features.has_select_for_update:
            if not self.related:
                sql += " FOR UPDATE"
            elif connection.features.has_select_for_update_of:
                sql += " FOR UPDATE OF t0"
            else:
                lock_sql = (
                    f"SELECT {qn(meta.pk.column)} FROM {qn(meta.db_table)} WHERE {_where(conditions, qn)} FOR UPDATE"
                )
        return sql, lock_sql, conditions, groups, readers

    def __call__(self, *values):
        connection = connections[(router.db_for_write if self.lock else router.db_for_read)(self.model)]
        sql, lock_sql, conditions, groups, readers = self.plan(connection)
        params = _prep(conditions, values, connection)
        if params is None:
            return None
        with connection.cursor() as cursor:
            if lock_sql:
                cursor.execute(lock_sql, params)
                if cursor.fetchone() is None:
                    return None
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        values = _convert(row, readers, connection)
        base, start = None, 0
        for fk, model, names, pk_index, width in groups:
            own = values[start : start + width]
            start += width
            obj = None if own[pk_index] is None else model.from_db(connection.alias, names, own)
            if fk is None:
                base = obj
            else:
                fk.set_cached_value(base, obj)
        return base


class Values(_Prepared):
    """`Values(Task, fields=("id", "state"), where=("step",), order_by=("created_at",))(step_id)`:
    a list of tuples of the fields' Python values, rows matching every `where` field by equality."""

    def __init__(self, model, *, fields: tuple[str, ...], where: tuple[str, ...], order_by: tuple[str, ...] = ()):
        super().__init__(model)
        self.field_names = fields
        self.where = where
        self.order_by = order_by

    def build(self, connection, qn, meta):
        fields = [meta.get_field(n) for n in self.field_names]
        conditions = [meta.get_field(n) for n in self.where]
        sql = f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(meta.db_table)} WHERE "
        sql += _where(conditions, qn)
        if self.order_by:
            sql += " ORDER BY " + ", ".join(qn(meta.get_field(n).column) for n in self.order_by)
        return sql, conditions, _readers(fields, meta.db_table, connection)

    def __call__(self, *values) -> list[tuple]:
        connection = connections[router.db_for_read(self.model)]
        sql, conditions, readers = self.plan(connection)
        params = _prep(conditions, values, connection)
        if params is None:
            return []
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [tuple(_convert(row, readers, connection)) for row in rows]


class Update(_Prepared):
    """`Update(Task, set=("state", "updated_at"), where=("id", "state", "version"), increment=("version",))`
    called with the `set` values then the `where` values: the number of rows changed. As with
    `QuerySet.update()`, `auto_now` fields change only when named in `set`."""

    def __init__(self, model, *, set: tuple[str, ...], where: tuple[str, ...], increment: tuple[str, ...] = ()):  # noqa: A002
        super().__init__(model)
        self.set = set
        self.where = where
        self.increment = increment

    def build(self, connection, qn, meta):
        setting = [meta.get_field(n) for n in self.set]
        conditions = [meta.get_field(n) for n in self.where]
        assignments = [f"{qn(f.column)} = %s" for f in setting]
        assignments += [f"{qn(c)} = {qn(c)} + 1" for c in (meta.get_field(n).column for n in self.increment)]
        sql = f"UPDATE {qn(meta.db_table)} SET {', '.join(assignments)} WHERE {_where(conditions, qn)}"
        return sql, setting + conditions

    def __call__(self, *values) -> int:
        connection = connections[router.db_for_write(self.model)]
        sql, fields = self.plan(connection)
        params = _prep(fields, values, connection)
        if params is None:
            return 0
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount
