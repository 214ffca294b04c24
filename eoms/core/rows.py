"""Prepared statements for the hottest reads and writes: audit entries, outbox messages, the rows
of an approval decision.

The ORM compiles a statement anew on every call; on the write path of a decision compiling costs
several times what the database does (a three-table lookup: 0.8 ms to compile, 0.1 ms to run;
profile in bench/README.md, "approvals"). These helpers build their SQL once per database vendor
from the model's own metadata and go through the fields' own conversions, so what they write and
read is exactly what the ORM would: defaults, `auto_now`, JSON, UUIDs, decimals, time zones.

- `Insert(Model)`: one row (answering its primary key: RETURNING where the database has it, else
  the cursor's last id), a model object, or many rows in one round trip.
- `Select(Model, where=(...), related=(...), order_by=(...), lock=...)`: model objects with their
  forward foreign keys joined and cached, as `select_related(...).filter(...)`: `.first()`, `.all()`.
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

__all__ = ["Insert", "Select", "Values", "Update"]

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
    """The statement of one model, built on first use for each database vendor (and, for `__in`
    conditions, each number of values)."""

    def __init__(self, model):
        self.model = model
        self._plans: dict[tuple, tuple] = {}

    def plan(self, connection, shape: tuple = ()) -> tuple:
        key = (connection.vendor, shape)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self.build(connection, connection.ops.quote_name, self.model._meta, shape)
        return plan

    def build(self, connection, qn, meta, shape: tuple) -> tuple:
        raise NotImplementedError


_OPERATORS = {"exact": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "in": "IN", "isnull": "IS NULL"}


def _conditions(model, where: tuple[str, ...]) -> list[tuple]:
    """(field, operator) of each `where` entry: "name" or "name__op" with op one of exact, lt, lte,
    gt, gte, in (the value is a list) and isnull (no value: the field IS NULL)."""
    out = []
    for spec in where:
        name, _sep, op = spec.partition("__")
        op = op or "exact"
        if op not in _OPERATORS:
            raise ValueError(f"{spec}: no operator {op!r} here")
        out.append((model._meta.get_field(name), op))
    return out


def _where(conditions, qn, shape: tuple, prefix: str = "") -> str:
    """The WHERE clause; `shape` holds the number of values of each `in` condition, in order."""
    clauses, sizes = [], iter(shape)
    for f, op in conditions:
        column = f"{prefix}{qn(f.column)}"
        if op == "isnull":
            clauses.append(f"{column} IS NULL")
        elif op == "in":
            clauses.append(f"{column} IN ({', '.join(['%s'] * next(sizes))})")
        else:
            clauses.append(f"{column} {_OPERATORS[op]} %s")
    return " AND ".join(clauses)


def _shape(conditions, values) -> tuple | None:
    """The sizes of the `in` values (None when one is empty: nothing can match)."""
    sizes = []
    for (_f, op), value in zip((c for c in conditions if c[1] != "isnull"), values, strict=True):
        if op == "in":
            if not value:
                return None
            sizes.append(len(value))
    return tuple(sizes)


def _prep(conditions, values, connection) -> list | None:
    """The values as the database takes them (a related object by its key, each item of a list for
    `in`), or None when one cannot be (a malformed UUID): then nothing can match."""
    params = []
    try:
        for (f, op), value in zip((c for c in conditions if c[1] != "isnull"), values, strict=True):
            for v in value if op == "in" else (value,):
                params.append(
                    f.get_db_prep_value(getattr(v, "pk", v) if f.is_relation else v, connection, prepared=False)
                )
    except (ValidationError, ValueError, TypeError):
        return None
    return params


def _readers(fields, connection) -> list:
    """Each field's column with the converters the ORM would apply to it (backend's, then field's)."""
    readers = []
    for f in fields:
        col = f.get_col(f.model._meta.db_table)
        readers.append((col, connection.ops.get_db_converters(col) + col.get_db_converters(connection)))
    return readers


def _convert(values, readers, connection) -> list:
    out = []
    for value, (col, converters) in zip(values, readers, strict=True):
        for converter in converters:
            value = converter(value, col, connection)
        out.append(value)
    return out


class _Read(_Prepared):
    def __init__(self, model, where: tuple[str, ...]):
        super().__init__(model)
        self.where = where
        self.conditions = None

    def _run(self, values, *, lock_first: bool = False) -> tuple[list, tuple] | None:
        """Execute; (rows, plan), or None when nothing can match."""
        if self.conditions is None:
            self.conditions = _conditions(self.model, self.where)
        connection = connections[(router.db_for_write if lock_first else router.db_for_read)(self.model)]
        shape = _shape(self.conditions, values)
        params = None if shape is None else _prep(self.conditions, values, connection)
        if params is None:
            return None
        plan = self.plan(connection, shape)
        sql, lock_sql = plan[0], plan[1]
        with connection.cursor() as cursor:
            if lock_sql:
                cursor.execute(lock_sql, params)
                if cursor.fetchone() is None:
                    return None
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return rows, plan, connection


class Select(_Read):
    """`Select(Task, where=("id", "assignee"), related=("step", "step__instance"))`: model objects,
    `.first(task_id, user_id)` (or None) and `.all(...)`, as `select_related(...).filter(...)`.

    `where` entries compare a field of the model with the call's values, in order: "name" (=),
    "name__in" (a list), "name__lt/lte/gt/gte", "name__isnull" (IS NULL; takes no value). A value
    its field cannot take (a malformed UUID) finds nothing, as a lookup would not; None never
    matches "=". `related` names forward foreign keys, nested with "__" (a parent before its
    child), read in the same statement (LEFT JOIN where nullable) and cached on the objects.
    `order_by` names fields of the model. `lock`: the model's own rows are locked until the
    transaction ends (FOR UPDATE OF them alone where the database can say so; else a narrow locking
    read comes first, so the joined rows are never locked)."""

    def __init__(
        self,
        model,
        *,
        where: tuple[str, ...],
        related: tuple[str, ...] = (),
        order_by: tuple[str, ...] = (),
        lock: bool = False,
    ):
        super().__init__(model, where)
        self.related = related
        self.order_by = order_by
        self.lock = lock

    def build(self, connection, qn, meta, shape):
        parts = {"": (None, self.model, "t0", "")}  # path -> (fk, model, alias, parent path)
        joins = []
        for i, path in enumerate(self.related, start=1):
            parent_path, _sep, name = path.rpartition("__")
            _pfk, parent_model, parent_alias, _pp = parts[parent_path]
            fk = parent_model._meta.get_field(name)
            alias = f"t{i}"
            outer = fk.null or any(parts[p][0] is not None and parts[p][0].null for p in _ancestors(parent_path))
            joins.append(
                f"{'LEFT OUTER JOIN' if outer else 'INNER JOIN'} {qn(fk.related_model._meta.db_table)} {alias} "
                f"ON {parent_alias}.{qn(fk.column)} = {alias}.{qn(fk.target_field.column)}"
            )
            parts[path] = (fk, fk.related_model, alias, parent_path)
        columns, groups, fields_read = [], [], []
        for path, (fk, model, alias, parent_path) in parts.items():
            fields = list(model._meta.concrete_fields)
            columns += [f"{alias}.{qn(f.column)}" for f in fields]
            fields_read += fields
            groups.append(
                (path, fk, parent_path, model, [f.attname for f in fields], fields.index(model._meta.pk), len(fields))
            )
        sql = f"SELECT {', '.join(columns)} FROM {qn(meta.db_table)} t0 {' '.join(joins)} WHERE "
        sql += _where(self.conditions, qn, shape, "t0.")
        if self.order_by:
            sql += " ORDER BY " + ", ".join(f"t0.{qn(meta.get_field(n).column)}" for n in self.order_by)
        lock_sql = None
        if self.lock and connection.features.has_select_for_update:
            if not self.related:
                sql += " FOR UPDATE"
            elif connection.features.has_select_for_update_of:
                sql += " FOR UPDATE OF t0"
            else:
                lock_sql = f"SELECT {qn(meta.pk.column)} FROM {qn(meta.db_table)} WHERE "
                lock_sql += _where(self.conditions, qn, shape) + " FOR UPDATE"
        return sql, lock_sql, groups, _readers(fields_read, connection)

    def all(self, *values) -> list:
        found = self._run(values, lock_first=self.lock)
        if found is None:
            return []
        rows, (_sql, _lock, groups, readers), connection = found
        return [self._object(_convert(row, readers, connection), groups, connection) for row in rows]

    def first(self, *values):
        objects = self.all(*values)
        return objects[0] if objects else None

    @staticmethod
    def _object(values, groups, connection):
        made, start = {}, 0
        for path, fk, parent_path, model, names, pk_index, width in groups:
            own = values[start : start + width]
            start += width
            obj = None if own[pk_index] is None else model.from_db(connection.alias, names, own)
            made[path] = obj
            if fk is not None and made.get(parent_path) is not None:
                fk.set_cached_value(made[parent_path], obj)
        return made[""]


def _ancestors(path: str) -> list[str]:
    """ "a__b__c" -> ["a", "a__b", "a__b__c"]; "" -> []."""
    names = path.split("__") if path else []
    return ["__".join(names[: i + 1]) for i in range(len(names))]


class Values(_Read):
    """`Values(Task, fields=("id", "state"), where=("step",), order_by=("created_at",))(step_id)`:
    a list of tuples of the fields' Python values; `where` as for Select."""

    def __init__(self, model, *, fields: tuple[str, ...], where: tuple[str, ...], order_by: tuple[str, ...] = ()):
        super().__init__(model, where)
        self.field_names = fields
        self.order_by = order_by

    def build(self, connection, qn, meta, shape):
        fields = [meta.get_field(n) for n in self.field_names]
        sql = f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(meta.db_table)} WHERE "
        sql += _where(self.conditions, qn, shape)
        if self.order_by:
            sql += " ORDER BY " + ", ".join(qn(meta.get_field(n).column) for n in self.order_by)
        return sql, None, _readers(fields, connection)

    def __call__(self, *values) -> list[tuple]:
        found = self._run(values)
        if found is None:
            return []
        rows, (_sql, _lock, readers), connection = found
        return [tuple(_convert(row, readers, connection)) for row in rows]


class Update(_Prepared):
    """`Update(Task, set=("state", "updated_at"), where=("id", "state", "version"), increment=("version",))`
    called with the `set` values then the `where` values (as for Select): the number of rows
    changed. As with `QuerySet.update()`, `auto_now` fields change only when named in `set`."""

    def __init__(self, model, *, set: tuple[str, ...], where: tuple[str, ...], increment: tuple[str, ...] = ()):  # noqa: A002
        super().__init__(model)
        self.set = set
        self.where = where
        self.increment = increment
        self.conditions = None

    def build(self, connection, qn, meta, shape):
        assignments = [f"{qn(f.column)} = %s" for f, _op in self.conditions[: len(self.set)]]
        assignments += [f"{qn(c)} = {qn(c)} + 1" for c in (meta.get_field(n).column for n in self.increment)]
        where = _where(self.conditions[len(self.set) :], qn, shape)
        return f"UPDATE {qn(meta.db_table)} SET {', '.join(assignments)} WHERE {where}"

    def __call__(self, *values) -> int:
        if self.conditions is None:
            self.conditions = [(self.model._meta.get_field(n), "exact") for n in self.set]
            self.conditions += _conditions(self.model, self.where)
        connection = connections[router.db_for_write(self.model)]
        shape = _shape(self.conditions[len(self.set) :], values[len(self.set) :])
        params = None if shape is None else _prep(self.conditions, values, connection)
        if params is None:
            return 0
        with connection.cursor() as cursor:
            cursor.execute(self.plan(connection, shape), params)
            return cursor.rowcount
