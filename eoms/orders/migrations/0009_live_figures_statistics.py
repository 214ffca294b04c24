"""Statistics for the live dashboard figures on PostgreSQL (decision 0022).

`orders.selectors.order_figures(live=True)` groups every order in scope by its creation month (in
settings.TIME_ZONE), state, region and kind. Without statistics on that combination PostgreSQL
estimates about one group per order, and so neither plans a parallel aggregate nor hashes in the
memory it needs; told that the groups are few (ndistinct statistics, PostgreSQL 14 and later), it
scans a million orders with parallel workers in about half the time. The month expression must be
the one Django writes for TruncMonth in the configured zone: the time zone is read from the settings
when the migration runs (a changed EOMS_TIME_ZONE keeps the figures right; only the estimate is lost
until this statistics object is made again)."""

from django.conf import settings
from django.db import migrations


def create(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return
    # DDL takes no server-side parameters: Django's PostgreSQL schema editor merges them in itself.
    schema_editor.execute(
        "CREATE STATISTICS IF NOT EXISTS orders_order_figures_stats (ndistinct) ON state, region, kind, "
        "(date_trunc('month', created_at AT TIME ZONE %s)) FROM orders_order",
        [settings.TIME_ZONE],
    )
    schema_editor.execute("ANALYZE orders_order")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP STATISTICS IF EXISTS orders_order_figures_stats")


class Migration(migrations.Migration):
    dependencies = [("orders", "0008_summary_rows_not_unique")]

    operations = [migrations.RunPython(create, drop)]
