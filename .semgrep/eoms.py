"""Examples for .semgrep/eoms.yml: `semgrep --test --config .semgrep/ .semgrep/` checks that each
`ruleid:` line is found and each `ok:` line is not. Never imported or run."""

from django.db.models.expressions import RawSQL
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI


def queries(cursor, connection, Order, table, value, qn):
    # ruleid: eoms-raw-sql-formatting
    cursor.execute(f"SELECT * FROM orders WHERE title = '{value}'")
    # ruleid: eoms-raw-sql-formatting
    cursor.execute("SELECT * FROM orders WHERE title = '%s'" % value)
    # ruleid: eoms-raw-sql-formatting
    cursor.execute("SELECT * FROM orders WHERE title = '{}'".format(value))
    # ruleid: eoms-raw-sql-formatting
    Order.objects.raw(f"SELECT * FROM orders WHERE id = {value}")
    # ruleid: eoms-raw-sql-formatting
    RawSQL(f"title = '{value}'", [])
    # ruleid: eoms-raw-sql-formatting
    Order.objects.extra(where=["title = 'x'"])
    # ok: eoms-raw-sql-formatting
    cursor.execute("SELECT * FROM orders WHERE title = %s", [value])
    statement = f"SELECT COUNT(*) FROM {qn(table)}"  # identifiers quoted once, values never in the text
    # ok: eoms-raw-sql-formatting
    cursor.execute(statement)
    # ok: eoms-raw-sql-formatting
    cursor.execute(f"LOCK TABLE {connection.ops.quote_name(table)} IN EXCLUSIVE MODE")
    # ruleid: eoms-raw-sql-formatting
    cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)} WHERE title = '{value}'")


# ruleid: eoms-no-csrf-exempt
@csrf_exempt
def hook(request):
    return None


# ruleid: eoms-no-csrf-exempt
api = NinjaAPI(csrf=False)


def writes(Order, order, form, _insert_order, items):
    # ruleid: eoms-write-outside-services
    Order.objects.create(title="x")
    # ruleid: eoms-write-outside-services
    Order.objects.filter(pk=1).update(title="x")
    # ruleid: eoms-write-outside-services
    Order.objects.filter(pk=1).exclude(state="x").delete()
    # ruleid: eoms-write-outside-services
    order.save()
    # ruleid: eoms-write-outside-services
    order.save(update_fields=["title"])
    # ruleid: eoms-write-outside-services
    form.save(commit=False)
    # ruleid: eoms-write-outside-services
    _insert_order.save(order)
    # ok: eoms-write-outside-services
    items.update({"a": 1})
    # ok: eoms-write-outside-services
    Order.objects.filter(pk=1).exists()
