"""On PostgreSQL, audit rows are append-only in the database itself: a trigger refuses UPDATE and
DELETE of any row of core_auditentry (TRUNCATE, which a test database flush and `eoms demo --reset`
use, is a statement, not a row operation, and stays allowed). Other databases have no such guard;
the HMAC chain and its checkpoints detect tampering on all of them."""

from django.db import migrations

FUNCTION = "eoms_audit_entry_append_only"

CREATE = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % of entry #% refused', TG_OP, OLD.seq
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER {FUNCTION} BEFORE UPDATE OR DELETE ON core_auditentry
    FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();
"""

DROP = f"""
DROP TRIGGER IF EXISTS {FUNCTION} ON core_auditentry;
DROP FUNCTION IF EXISTS {FUNCTION}();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("core", "0003_dead_letter")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
