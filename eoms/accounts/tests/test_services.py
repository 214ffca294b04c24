import pytest

from eoms.accounts import services
from eoms.accounts.models import OrgUnit
from eoms.core.errors import PermissionDenied, ValidationFailed
from eoms.core.models import AuditEntry, OutboxMessage


def test_create_org_unit_writes_one_audit_entry_and_one_event(world):
    parent = services.create_org_unit(actor=world.admin, code="ENG", name="工程管理部")
    audits, events = AuditEntry.objects.count(), OutboxMessage.objects.count()
    unit = services.create_org_unit(actor=world.admin, code="ENG-1", name="工程一部", parent=parent)
    assert (unit.parent, unit.code, unit.name) == (parent, "ENG-1", "工程一部")
    assert AuditEntry.objects.count() == audits + 1
    entry = AuditEntry.objects.order_by("-id").first()
    assert (entry.action, entry.object_id, entry.changes["parent"]) == (
        "accounts.org_unit_created",
        str(unit.id),
        "工程管理部",
    )
    message = OutboxMessage.objects.order_by("-id").first()
    assert OutboxMessage.objects.count() == events + 1
    assert message.event_type == "accounts.org_unit_created"
    assert message.payload == {"id": str(unit.id), "code": "ENG-1", "parent_id": str(parent.id)}


def test_create_org_unit_refuses_duplicates_blanks_and_non_admins(world):
    services.create_org_unit(actor=world.admin, code="FIN", name="财务部")
    audits = AuditEntry.objects.count()
    with pytest.raises(ValidationFailed) as dup:
        services.create_org_unit(actor=world.admin, code="FIN", name="财务二部")
    assert dup.value.errors == [{"field": "code", "message": "This code is taken."}]
    with pytest.raises(ValidationFailed) as blank:
        services.create_org_unit(actor=world.admin, code=" ", name="")
    assert [e["field"] for e in blank.value.errors] == ["code", "name"]
    with pytest.raises(PermissionDenied):
        services.create_org_unit(actor=world.pm, code="X", name="X")
    assert OrgUnit.objects.filter(code="FIN").count() == 1
    assert AuditEntry.objects.count() == audits
