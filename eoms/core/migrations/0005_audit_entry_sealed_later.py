"""Audit entries are appended unsealed and sealed afterwards (decision 0016): `seq` may be null until
core.audit.seal gives it, entries are listed by `id` (the order of writing).

On PostgreSQL the append-only trigger of core.0004 is replaced by one that lets exactly one UPDATE
through: the one that seals an entry (seq from null to a number, prev_hash and hash set) while every
content column stays as it was. Any other UPDATE, and every DELETE, is refused as before.

Going back to core.0004 needs every entry sealed first (`eoms audit seal`): seq becomes NOT NULL again.
"""

from django.db import migrations, models

FUNCTION = "eoms_audit_entry_append_only"

# The columns whose values the HMAC covers (core.audit._canonical), and the id.
CONTENT = ("id", "at", "actor_id", "actor_repr", "ip", "request_id", "action", "object_type", "object_id")
CONTENT += ("object_repr", "changes")

SEALING = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
       AND ROW({", ".join(f"NEW.{c}" for c in CONTENT)})
           IS NOT DISTINCT FROM ROW({", ".join(f"OLD.{c}" for c in CONTENT)}) THEN
        RETURN NEW;  -- sealing: core.audit.seal
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: % of entry % refused', TG_OP,
        coalesce('#' || OLD.seq, '(id ' || OLD.id || ', not sealed yet)')
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

# core.0004's function, for going back.
APPEND_ONLY = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % of entry #% refused', TG_OP, OLD.seq
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def sealing_allowed(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SEALING, params=None)


def append_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY, params=None)


class Migration(migrations.Migration):
    dependencies = [("core", "0004_audit_append_only")]

    operations = [
        migrations.AlterModelOptions(
            name="auditentry",
            options={"ordering": ["-id"], "verbose_name": "audit entry", "verbose_name_plural": "audit entries"},
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="seq",
            field=models.BigIntegerField(blank=True, null=True, unique=True, verbose_name="sequence"),
        ),
        migrations.RunPython(sealing_allowed, append_only, elidable=False),
    ]
