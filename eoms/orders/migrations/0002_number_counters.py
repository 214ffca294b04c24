from django.db import migrations


def create_counters(apps, schema_editor):
    # Counters exist before the first order of each year, so concurrent first creators only ever
    # UPDATE the row (an INSERT race deadlocks on InnoDB).
    Counter = apps.get_model("core", "Counter")
    existing = set(Counter.objects.filter(name__startswith="order:").values_list("name", flat=True))
    Counter.objects.bulk_create(
        [Counter(name=f"order:{y}", value=0) for y in range(2020, 2101) if f"order:{y}" not in existing]
    )


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial"), ("core", "0002_chain_head")]
    operations = [migrations.RunPython(create_counters, migrations.RunPython.noop)]
