"""Services of master data: each write leaves its rows, one audit entry and one outbox message;
bad input is refused with every problem named, and a refused write leaves nothing behind."""

from decimal import Decimal

import pytest
from stdnum.cn import uscc

from eoms.accounts.models import ProjectMembership
from eoms.accounts.roles import ProjectRole, Role
from eoms.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.masterdata import sensitive, services
from eoms.masterdata.models import Customer, CustomerContact, Project, ProjectType, Supplier
from eoms.masterdata.tests.sealed import add_contact
from eoms.testing.factories import CustomerFactory, ProjectTypeFactory, SupplierFactory, UserFactory, valid_uscc

pytestmark = pytest.mark.django_db

GOOD = valid_uscc(900)


def _bad_check(code: str) -> str:
    """The same code with a wrong check character."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    wrong = alphabet[(alphabet.index(code[-1]) + 1) % len(alphabet)]
    return code[:17] + wrong


class Trail:
    """Audit entries and outbox messages written since it was made."""

    def __init__(self):
        self.audit_id = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
        self.outbox_id = OutboxMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def audit(self):
        return list(AuditEntry.objects.filter(id__gt=self.audit_id).order_by("id"))

    def outbox(self):
        return list(OutboxMessage.objects.filter(id__gt=self.outbox_id).order_by("id"))


def _fields(exc) -> dict:
    return {e["field"]: e["message"] for e in exc.value.errors}


# ------------------------------------------------------------------------------------------ customers


@pytest.mark.asvs("16.2.5")
def test_create_customer_writes_customer_contacts_audit_and_outbox(world):
    trail = Trail()
    customer = services.create_customer(
        actor=world.admin,
        name=" 上海申汇城市建设投资有限公司 ",
        uscc=GOOD.lower()[:4] + " " + GOOD.lower()[4:],
        region="east",
        grade="A",
        address="上海市浦东新区世纪大道1568号",
        contacts=[{"name": "顾志远", "title": "工程部经理", "phone": "138 1662 0101", "email": "gu@example.com"}],
    )
    customer.refresh_from_db()
    assert (customer.name, customer.uscc, customer.region, customer.grade, customer.version) == (
        "上海申汇城市建设投资有限公司",
        GOOD,
        "east",
        "A",
        1,
    )
    assert [(c.name, c.title, sensitive.clear(c, "phone"), c.email) for c in customer.contacts.all()] == [
        ("顾志远", "工程部经理", "13816620101", "gu@example.com")
    ]
    [entry] = trail.audit()
    assert (entry.action, entry.object_type, entry.object_id, entry.actor_id) == (
        "masterdata.customer_created",
        "masterdata.customer",
        str(customer.id),
        world.admin.id,
    )
    assert entry.changes["uscc"] == GOOD
    # The audit keeps the mobile masked (ASVS V16.2.5)
    assert entry.changes["contacts"] == [
        {"name": "顾志远", "title": "工程部经理", "phone": "138****0101", "email": "gu@example.com"}
    ]
    assert entry.changes["id_card_number"] == ""
    [message] = trail.outbox()
    assert (message.event_type, message.aggregate_id) == ("masterdata.customer_created", str(customer.id))
    assert message.payload == {
        "customer_id": str(customer.id),
        "name": "上海申汇城市建设投资有限公司",
        "uscc": GOOD,
        "region": "east",
    }


def test_system_actor_may_create_customer(db):
    customer = services.create_customer(actor=None, name="系统客户", uscc=GOOD, region="north")
    assert customer.grade == "C"
    assert AuditEntry.objects.get(object_id=str(customer.id)).actor_id is None


def test_bad_check_character_is_named_and_nothing_is_written(world):
    trail = Trail()
    bad = _bad_check(GOOD)
    with pytest.raises(ValidationFailed) as exc:
        services.create_customer(actor=world.admin, name="某公司", uscc=bad, region="east")
    message = _fields(exc)["uscc"]
    assert f"“{bad[-1]}”" in message
    assert f"“{uscc.calc_check_digit(GOOD[:17])}”" in message
    assert exc.value.status == 422
    assert exc.value.code == "masterdata.validation_failed"
    assert not Customer.objects.filter(name="某公司").exists()
    assert trail.audit() == [] and trail.outbox() == []


def test_every_problem_is_reported_at_once(world):
    with pytest.raises(ValidationFailed) as exc:
        services.create_customer(
            actor=world.admin,
            name="",
            uscc="1234",
            region="moon",
            grade="Z",
            contacts=[{"name": "", "phone": "2345", "email": "not-an-email"}],
        )
    fields = _fields(exc)
    assert set(fields) == {
        "name",
        "uscc",
        "region",
        "grade",
        "contacts.0.name",
        "contacts.0.phone",
        "contacts.0.email",
    }
    assert fields["uscc"] == "A unified social credit code has 18 characters; this one has 4."
    assert fields["contacts.0.phone"] == "A mobile number has 11 digits and starts with 1, e.g. 13812345678."


def test_duplicate_credit_code_is_refused(world):
    existing = CustomerFactory(uscc=GOOD, name="先到公司")
    with pytest.raises(ValidationFailed) as exc:
        services.create_customer(actor=world.admin, name="后到公司", uscc=GOOD, region="east")
    assert _fields(exc)["uscc"] == f"Customer “{existing.name}” already has this credit code."
    assert Customer.objects.filter(uscc=GOOD).count() == 1


@pytest.mark.parametrize("role", ["pm", "approver", "engineer", "finance", "auditor", "outsider"])
def test_only_admin_creates_customers(world, role):
    trail = Trail()
    with pytest.raises(PermissionDenied):
        services.create_customer(actor=getattr(world, role), name="某公司", uscc=GOOD, region="east")
    assert not Customer.objects.filter(uscc=GOOD).exists()
    assert trail.audit() == []


def test_an_admin_who_is_also_auditor_changes_nothing(world):
    both = UserFactory(roles=[Role.ADMIN, Role.AUDITOR])
    with pytest.raises(PermissionDenied):
        services.create_customer(actor=both, name="某公司", uscc=GOOD, region="east")


def test_update_customer_records_before_and_after(world):
    customer = CustomerFactory(grade="B", address="旧地址")
    add_contact(customer, name="甲", phone="13800000000")
    trail = Trail()
    updated = services.update_customer(
        actor=world.admin,
        customer_id=customer.id,
        changes={"grade": "A", "address": "新地址", "name": customer.name, "contacts": [{"name": "乙"}]},
        expected_version=1,
    )
    assert (updated.grade, updated.address, updated.version) == ("A", "新地址", 2)
    assert list(updated.contacts.values_list("name", flat=True)) == ["乙"]
    [entry] = trail.audit()
    assert entry.action == "masterdata.customer_updated"
    assert entry.changes == {
        "grade": ["B", "A"],
        "address": ["旧地址", "新地址"],
        "contacts": [
            [{"name": "甲", "title": "", "phone": "138****0000", "email": ""}],
            [{"name": "乙", "title": "", "phone": "", "email": ""}],
        ],
    }
    [message] = trail.outbox()
    assert message.payload == {"customer_id": str(customer.id), "fields": ["address", "contacts", "grade"]}


def test_update_without_a_change_writes_nothing(world):
    customer = CustomerFactory(grade="B")
    trail = Trail()
    same = services.update_customer(actor=world.admin, customer_id=customer.id, changes={"grade": "B"})
    assert same.version == 1
    assert trail.audit() == [] and trail.outbox() == []


def test_stale_version_is_a_conflict(world):
    customer = CustomerFactory()
    services.update_customer(actor=world.admin, customer_id=customer.id, changes={"grade": "A"})
    trail = Trail()
    with pytest.raises(Conflict) as exc:
        services.update_customer(actor=world.admin, customer_id=customer.id, changes={"grade": "D"}, expected_version=1)
    assert exc.value.code == "masterdata.stale"
    assert exc.value.status == 409
    customer.refresh_from_db()
    assert (customer.grade, customer.version) == ("A", 2)
    assert trail.audit() == []


def test_update_refuses_unknown_fields_and_another_customers_code(world):
    first, second = CustomerFactory(), CustomerFactory()
    with pytest.raises(ValidationFailed) as exc:
        services.update_customer(actor=world.admin, customer_id=first.id, changes={"id": "x"})
    assert _fields(exc) == {"id": "Not a field that can be changed."}
    with pytest.raises(ValidationFailed) as exc:
        services.update_customer(actor=world.admin, customer_id=first.id, changes={"uscc": second.uscc})
    assert _fields(exc)["uscc"] == f"Customer “{second.name}” already has this credit code."


def test_delete_customer(world):
    customer = CustomerFactory()
    CustomerContact.objects.create(customer=customer, name="甲")
    trail = Trail()
    services.delete_customer(actor=world.admin, customer_id=customer.id)
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert not CustomerContact.objects.filter(customer_id=customer.pk).exists()
    [entry] = trail.audit()
    assert (entry.action, entry.object_id, entry.changes) == (
        "masterdata.customer_deleted",
        str(customer.pk),
        {"uscc": customer.uscc},
    )
    assert [m.event_type for m in trail.outbox()] == ["masterdata.customer_deleted"]


def test_customer_with_projects_is_not_deleted(world):
    customer = world.project.customer
    trail = Trail()
    with pytest.raises(Conflict) as exc:
        services.delete_customer(actor=world.admin, customer_id=customer.id)
    assert exc.value.code == "masterdata.in_use"
    assert exc.value.extra == {"projects": 1, "orders": 0}
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert trail.audit() == []


def test_customer_with_orders_is_not_deleted(world):
    world.order()
    with pytest.raises(Conflict) as exc:
        services.delete_customer(actor=world.admin, customer_id=world.project.customer_id)
    assert exc.value.extra == {"projects": 1, "orders": 1}


def test_missing_customer_is_not_found(world):
    with pytest.raises(NotFound):
        services.delete_customer(actor=world.admin, customer_id="00000000-0000-0000-0000-000000000000")


# ------------------------------------------------------------------------------------------ project types


def test_create_project_type(world):
    trail = Trail()
    kind = services.create_project_type(actor=world.admin, code="tunnel", name="隧道", name_en="Tunnels")
    assert ProjectType.objects.get(code="tunnel").name == "隧道"
    [entry] = trail.audit()
    assert (entry.action, entry.changes) == (
        "masterdata.project_type_created",
        {"code": "tunnel", "name": "隧道", "name_en": "Tunnels"},
    )
    [message] = trail.outbox()
    assert message.payload == {"project_type_id": str(kind.id), "code": "tunnel"}


def test_project_type_code_is_unique_and_plain(world):
    ProjectTypeFactory(code="bridge", name="桥梁")
    with pytest.raises(ValidationFailed) as exc:
        services.create_project_type(actor=world.admin, code="BRIDGE", name="桥")
    assert _fields(exc) == {"code": "A project type with this code already exists."}
    with pytest.raises(ValidationFailed) as exc:
        services.create_project_type(actor=world.admin, code="桥 梁", name="桥")
    assert set(_fields(exc)) == {"code"}
    with pytest.raises(PermissionDenied):
        services.create_project_type(actor=world.pm, code="power", name="电力")


# ------------------------------------------------------------------------------------------ projects


def _project_args(world, **over):
    args = {
        "code": "SH-99",
        "name": "龙阳路综合改造工程",
        "customer": world.project.customer,
        "project_type": world.project.project_type,
        "region": "east",
        "province": "上海市",
        "city": "上海市",
        "address": "浦东新区龙阳路",
        "latitude": "31.2035",
        "longitude": Decimal("121.5571234"),
        "geofence_radius_m": 300,
    }
    return {**args, **over}


def test_create_project_without_manager(world):
    trail = Trail()
    project = services.create_project(actor=world.admin, **_project_args(world))
    project.refresh_from_db()
    assert (project.code, project.latitude, project.longitude, project.geofence_radius_m, project.manager_id) == (
        "SH-99",
        Decimal("31.203500"),
        Decimal("121.557123"),
        300,
        None,
    )
    [entry] = trail.audit()
    assert entry.action == "masterdata.project_created"
    assert entry.changes["customer"] == world.project.customer.name
    assert entry.changes["latitude"] == "31.203500"
    [message] = trail.outbox()
    assert message.payload == {
        "project_id": str(project.id),
        "code": "SH-99",
        "customer_id": str(world.project.customer_id),
        "region": "east",
        "manager_id": None,
    }


def test_create_project_with_manager_makes_them_a_pm_member(world):
    trail = Trail()
    project = services.create_project(actor=world.admin, **_project_args(world, manager=world.outsider))
    assert project.manager_id == world.outsider.id
    assert ProjectMembership.objects.get(project=project, user=world.outsider).role == ProjectRole.PM
    assert [e.action for e in trail.audit()] == ["masterdata.project_created", "accounts.membership_set"]
    assert [m.event_type for m in trail.outbox()] == ["masterdata.project_created", "accounts.membership_set"]


def test_project_rules(world):
    with pytest.raises(ValidationFailed) as exc:
        services.create_project(
            actor=world.admin,
            **_project_args(
                world,
                code=world.project.code.lower(),
                latitude="91",
                longitude="abc",
                geofence_radius_m=5,
                manager=world.finance,
                region="",
                name="x" * 201,
            ),
        )
    fields = _fields(exc)
    assert fields == {
        "code": f"A project with code {world.project.code.lower()} already exists.",
        "name": "At most 200 characters (this has 201).",
        "region": fields["region"],
        "latitude": "Must be between -90 and 90 degrees.",
        "longitude": "Enter a number of degrees, e.g. 31.230416.",
        "geofence_radius_m": "Must be from 10 to 50000 metres.",
        "manager": f"{world.finance} is not a project manager.",
    }
    assert not Project.objects.filter(name="x" * 201).exists()


def test_coordinates_come_in_pairs(world):
    with pytest.raises(ValidationFailed) as exc:
        services.create_project(actor=world.admin, **_project_args(world, longitude=None))
    assert _fields(exc) == {"longitude": "Give both latitude and longitude, or neither."}


def test_admin_updates_any_field_and_new_manager_joins(world):
    other_pm = UserFactory(roles=[Role.PROJECT_MANAGER])
    trail = Trail()
    project = services.update_project(
        actor=world.admin,
        project_id=world.project.id,
        changes={"manager": other_pm, "region": "north", "is_active": False},
        expected_version=world.project.version,
    )
    assert (project.manager_id, project.region, project.is_active) == (other_pm.id, "north", False)
    audit = trail.audit()
    assert [e.action for e in audit] == ["masterdata.project_updated", "accounts.membership_set"]
    assert audit[0].changes == {
        "manager": [world.pm.username, other_pm.username],
        "region": ["east", "north"],
        "is_active": [True, False],
    }
    assert ProjectMembership.objects.get(project=project, user=other_pm).role == ProjectRole.PM


def test_manager_updates_the_site_only(world):
    trail = Trail()
    project = services.update_project(
        actor=world.pm, project_id=world.project.id, changes={"address": "新址", "latitude": "30.5"}
    )
    assert (project.address, project.latitude, project.version) == ("新址", Decimal("30.500000"), 2)
    [entry] = trail.audit()
    assert entry.changes == {"address": ["", "新址"], "latitude": ["31.230416", "30.500000"]}
    with pytest.raises(PermissionDenied) as exc:
        services.update_project(actor=world.pm, project_id=world.project.id, changes={"code": "NEW"})
    assert "code" in exc.value.detail
    project.refresh_from_db()
    assert project.code == world.project.code


@pytest.mark.parametrize("role", ["approver", "engineer", "finance", "auditor"])
def test_other_members_may_not_update_projects(world, role):
    with pytest.raises(PermissionDenied):
        services.update_project(actor=getattr(world, role), project_id=world.project.id, changes={"name": "改"})


def test_outsider_does_not_see_the_project(world):
    with pytest.raises(NotFound):
        services.update_project(actor=world.outsider, project_id=world.project.id, changes={"name": "改"})


def test_project_stale_version(world):
    with pytest.raises(Conflict) as exc:
        services.update_project(
            actor=world.admin, project_id=world.project.id, changes={"name": "改"}, expected_version=7
        )
    assert exc.value.code == "masterdata.stale"


def test_members_are_set_and_removed(world):
    newcomer = UserFactory(roles=[Role.FIELD_ENGINEER])
    trail = Trail()
    membership = services.set_project_member(
        actor=world.pm, project_id=world.project.id, user_id=newcomer.id, role=ProjectRole.ENGINEER
    )
    assert membership.role == ProjectRole.ENGINEER
    services.remove_project_member(actor=world.pm, project_id=world.project.id, user_id=newcomer.id)
    assert not ProjectMembership.objects.filter(project=world.project, user=newcomer).exists()
    assert [e.action for e in trail.audit()] == ["accounts.membership_set", "accounts.membership_removed"]


def test_the_manager_stays_a_member(world):
    with pytest.raises(Conflict):
        services.remove_project_member(actor=world.admin, project_id=world.project.id, user_id=world.pm.id)
    with pytest.raises(Conflict):
        services.set_project_member(actor=world.admin, project_id=world.project.id, user_id=world.pm.id, role="viewer")
    with pytest.raises(NotFound):
        services.remove_project_member(actor=world.admin, project_id=world.project.id, user_id=world.auditor.id)
    with pytest.raises(PermissionDenied):
        services.set_project_member(actor=world.engineer, project_id=world.project.id, user_id=world.auditor.id)


# ------------------------------------------------------------------------------------------ suppliers


def test_create_and_update_supplier(world):
    trail = Trail()
    supplier = services.create_supplier(
        actor=world.admin,
        name="江苏宏图建筑劳务有限公司",
        uscc=GOOD,
        kind="subcontractor",
        region="east",
        contact_name="高峰",
        contact_phone="+86 138-6201-0201",
        qualification="施工劳务不分等级",
    )
    assert (sensitive.clear(supplier, "contact_phone"), supplier.kind) == ("13862010201", "subcontractor")
    updated = services.update_supplier(
        actor=world.admin, supplier_id=supplier.id, changes={"is_active": False, "qualification": "劳务资质"}
    )
    assert (updated.is_active, updated.qualification, updated.version) == (False, "劳务资质", 2)
    created, changed = trail.audit()
    assert created.action == "masterdata.supplier_created"
    assert changed.changes == {"is_active": [True, False], "qualification": ["施工劳务不分等级", "劳务资质"]}
    assert [m.event_type for m in trail.outbox()] == ["masterdata.supplier_created", "masterdata.supplier_updated"]


def test_supplier_rules(world):
    SupplierFactory(uscc=GOOD)
    with pytest.raises(ValidationFailed) as exc:
        services.create_supplier(
            actor=world.admin, name="某", uscc=GOOD, kind="broker", region="east", contact_phone="0211234567"
        )
    assert set(_fields(exc)) == {"uscc", "kind", "contact_phone"}
    with pytest.raises(PermissionDenied):
        services.create_supplier(actor=world.finance, name="某", uscc=valid_uscc(901), kind="supplier", region="east")
    assert Supplier.objects.filter(uscc=GOOD).count() == 1


def test_rolled_back_work_leaves_no_row_audit_or_message(world):
    from django.db import transaction

    trail = Trail()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_customer(actor=world.admin, name="回滚公司", uscc=GOOD, region="east")
        services.create_project(actor=world.admin, **_project_args(world, manager=world.pm))
        raise RuntimeError("the caller's transaction fails after the services ran")
    assert not Customer.objects.filter(uscc=GOOD).exists()
    assert not Project.objects.filter(code="SH-99").exists()
    assert trail.audit() == [] and trail.outbox() == []
