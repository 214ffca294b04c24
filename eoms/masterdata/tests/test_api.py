"""The master data API: shapes, scope (404 outside it), permissions (403), problem+json errors."""

import io
from decimal import Decimal

import pytest
from openpyxl import Workbook

from eoms.accounts.models import ProjectMembership
from eoms.core.models import AuditEntry
from eoms.masterdata.models import Customer, Project, ProjectType, Supplier
from eoms.masterdata.tests.sealed import add_contact
from eoms.testing.factories import CustomerFactory, MembershipFactory, SupplierFactory, UserFactory, valid_uscc

pytestmark = pytest.mark.django_db

BASE = "/api/v1/masterdata"


@pytest.fixture
def as_user(client):
    def login(user):
        client.force_login(user)
        return client

    return login


def xlsx(rows) -> io.BytesIO:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    out.seek(0)
    out.name = "import.xlsx"
    return out


def test_customers_list_search_and_pages(world, as_user):
    CustomerFactory(name="宁波港城建设有限公司", region="east")
    for i in range(3):
        CustomerFactory(name=f"成都天府投资{i}", region="southwest")
    client = as_user(world.engineer)
    body = client.get(f"{BASE}/customers", {"q": "天府", "page_size": 2, "page": 2}).json()
    assert (body["count"], body["page"], body["page_size"]) == (3, 2, 2)
    assert [c["name"] for c in body["results"]] == ["成都天府投资2"]
    body = client.get(f"{BASE}/customers", {"region": "east", "q": "宁波"}).json()
    [only] = body["results"]
    assert (only["name"], only["region"], only["region_label"]) == ("宁波港城建设有限公司", "east", "East China")
    assert client.get(f"{BASE}/customers", {"page_size": 500}).status_code == 422


def test_customer_detail_has_contacts_and_scoped_projects(world, as_user):
    customer = world.project.customer
    add_contact(customer, name="顾志远", phone="13816620101")
    body = as_user(world.engineer).get(f"{BASE}/customers/{customer.id}").json()
    assert [(c["name"], c["phone"]) for c in body["contacts"]] == [("顾志远", "138****0101")]
    assert body["projects"] == [{"id": str(world.project.id), "code": world.project.code, "name": world.project.name}]
    other = as_user(world.outsider).get(f"{BASE}/customers/{customer.id}").json()
    assert other["projects"] == []


def test_create_customer(world, as_user):
    code = valid_uscc(321)
    response = as_user(world.admin).post(
        f"{BASE}/customers",
        {
            "name": "深圳前湾基础设施投资有限公司",
            "uscc": code,
            "region": "south",
            "grade": "A",
            "contacts": [{"name": "黄志伟", "phone": "13902560109"}],
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["uscc"], body["grade"], body["version"]) == (code, "A", 1)
    assert [c["name"] for c in body["contacts"]] == ["黄志伟"]
    assert Customer.objects.filter(uscc=code).count() == 1


def test_bad_credit_code_is_problem_json(world, as_user):
    code = valid_uscc(322)
    bad = code[:17] + ("1" if code[-1] == "0" else "0")
    response = as_user(world.admin).post(
        f"{BASE}/customers", {"name": "某", "uscc": bad, "region": "east"}, content_type="application/json"
    )
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "masterdata.validation_failed"
    assert [e["field"] for e in body["errors"]] == ["uscc"]


def test_non_admin_may_not_create(world, as_user):
    response = as_user(world.auditor).post(
        f"{BASE}/customers", {"name": "某", "uscc": valid_uscc(323), "region": "east"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "masterdata.permission_denied"


def test_patch_customer_with_version(world, as_user):
    customer = CustomerFactory(grade="B")
    client = as_user(world.admin)
    response = client.patch(
        f"{BASE}/customers/{customer.id}", {"grade": "A", "version": 1}, content_type="application/json"
    )
    assert (response.status_code, response.json()["grade"], response.json()["version"]) == (200, "A", 2)
    stale = client.patch(
        f"{BASE}/customers/{customer.id}", {"grade": "D", "version": 1}, content_type="application/json"
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "masterdata.stale"
    null = client.patch(f"{BASE}/customers/{customer.id}", {"name": None}, content_type="application/json")
    assert null.status_code == 422


def test_delete_customer(world, as_user):
    customer = CustomerFactory()
    client = as_user(world.admin)
    assert client.delete(f"{BASE}/customers/{customer.id}").status_code == 204
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert client.delete(f"{BASE}/customers/{customer.id}").status_code == 404
    in_use = client.delete(f"{BASE}/customers/{world.project.customer_id}")
    assert in_use.status_code == 409
    assert (in_use.json()["code"], in_use.json()["projects"]) == ("masterdata.in_use", 1)


def test_projects_are_scoped(world, as_user):
    body = as_user(world.outsider).get(f"{BASE}/projects").json()
    assert [p["code"] for p in body["results"]] == [world.other_project.code]
    assert as_user(world.outsider).get(f"{BASE}/projects/{world.project.id}").status_code == 404
    detail = as_user(world.engineer).get(f"{BASE}/projects/{world.project.id}").json()
    assert detail["latitude"] == "31.230416"
    assert detail["manager"]["username"] == world.pm.username
    assert detail["editable_fields"] == []
    assert {m["user"]["username"]: m["role"] for m in detail["members"]} == {
        world.pm.username: "pm",
        world.approver.username: "viewer",
        world.engineer.username: "engineer",
        world.finance.username: "viewer",
    }
    assert detail["members"][0]["user"]["username"] == world.pm.username
    assert as_user(world.admin).get(f"{BASE}/projects", {"q": world.other_project.code}).json()["count"] == 1


def test_create_project_and_patch_as_manager(world, as_user):
    response = as_user(world.admin).post(
        f"{BASE}/projects",
        {
            "code": "GZ-01",
            "name": "南沙大道改造工程",
            "customer_id": str(world.project.customer_id),
            "project_type_id": str(world.project.project_type_id),
            "region": "south",
            "latitude": "22.7965",
            "longitude": 113.5260,
            "manager_id": str(world.pm.id),
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["code"], body["latitude"], body["longitude"]) == ("GZ-01", "22.796500", "113.526000")
    assert [m["role"] for m in body["members"]] == ["pm"]
    project = Project.objects.get(code="GZ-01")
    pm = as_user(world.pm)
    patched = pm.patch(f"{BASE}/projects/{project.id}", {"address": "南沙区"}, content_type="application/json")
    assert (patched.status_code, patched.json()["address"]) == (200, "南沙区")
    refused = pm.patch(f"{BASE}/projects/{project.id}", {"region": "east"}, content_type="application/json")
    assert refused.status_code == 403
    out_of_range = pm.patch(f"{BASE}/projects/{project.id}", {"latitude": 95}, content_type="application/json")
    assert out_of_range.status_code == 422


def test_create_project_bad_references(world, as_user):
    response = as_user(world.admin).post(
        f"{BASE}/projects",
        {
            "code": "X-1",
            "name": "某",
            "customer_id": "00000000-0000-0000-0000-000000000000",
            "project_type_id": str(world.project.project_type_id),
            "region": "east",
        },
        content_type="application/json",
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "customer", "message": "No such customer."}]


def test_members(world, as_user):
    newcomer = UserFactory()
    pm = as_user(world.pm)
    added = pm.post(
        f"{BASE}/projects/{world.project.id}/members",
        {"user_id": str(newcomer.id), "role": "engineer"},
        content_type="application/json",
    )
    assert added.status_code == 201
    assert (added.json()["user"]["username"], added.json()["role"]) == (newcomer.username, "engineer")
    listed = pm.get(f"{BASE}/projects/{world.project.id}/members").json()
    assert newcomer.username in [m["user"]["username"] for m in listed]
    assert pm.delete(f"{BASE}/projects/{world.project.id}/members/{newcomer.id}").status_code == 204
    assert not ProjectMembership.objects.filter(user=newcomer).exists()
    assert pm.delete(f"{BASE}/projects/{world.project.id}/members/{newcomer.id}").status_code == 404
    assert pm.delete(f"{BASE}/projects/{world.project.id}/members/{world.pm.id}").status_code == 409
    denied = as_user(world.engineer).post(
        f"{BASE}/projects/{world.project.id}/members", {"user_id": str(newcomer.id)}, content_type="application/json"
    )
    assert denied.status_code == 403
    unknown = as_user(world.pm).post(
        f"{BASE}/projects/{world.project.id}/members",
        {"user_id": "00000000-0000-0000-0000-000000000000"},
        content_type="application/json",
    )
    assert unknown.status_code == 422


def test_project_types(world, as_user):
    created = as_user(world.admin).post(
        f"{BASE}/project-types", {"code": "power", "name": "电力", "name_en": "Power"}, content_type="application/json"
    )
    assert created.status_code == 201
    assert ProjectType.objects.get(code="power").name_en == "Power"
    listed = as_user(world.finance).get(f"{BASE}/project-types").json()
    assert [t["code"] for t in listed] == ["municipal_road", "power"]


def test_suppliers(world, as_user):
    SupplierFactory(name="浙江固基桩基工程有限公司", kind="subcontractor")
    SupplierFactory(name="上海建材供应", kind="supplier")
    client = as_user(world.admin)
    body = client.get(f"{BASE}/suppliers", {"kind": "subcontractor"}).json()
    assert [s["name"] for s in body["results"]] == ["浙江固基桩基工程有限公司"]
    created = client.post(
        f"{BASE}/suppliers",
        {
            "name": "江苏宏图",
            "uscc": valid_uscc(324),
            "kind": "subcontractor",
            "region": "east",
            "contact_phone": "123",
        },
        content_type="application/json",
    )
    assert created.status_code == 422
    assert created.json()["errors"][0]["field"] == "contact_phone"
    created = client.post(
        f"{BASE}/suppliers",
        {"name": "江苏宏图", "uscc": valid_uscc(324), "kind": "subcontractor", "region": "east"},
        content_type="application/json",
    )
    assert created.status_code == 201
    supplier_id = created.json()["id"]
    patched = client.patch(f"{BASE}/suppliers/{supplier_id}", {"is_active": False}, content_type="application/json")
    assert (patched.status_code, patched.json()["is_active"]) == (200, False)
    assert as_user(world.finance).get(f"{BASE}/suppliers/{supplier_id}").json()["name"] == "江苏宏图"
    assert Supplier.objects.get(pk=supplier_id).version == 2


def test_import_customers_endpoint(world, as_user):
    client = as_user(world.admin)
    good = xlsx(
        [["名称", "统一社会信用代码", "区域"], ["甲公司", valid_uscc(330), "华东"], ["乙公司", valid_uscc(331), "华北"]]
    )
    response = client.post(f"{BASE}/customers/import", {"file": good})
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 2
    before = AuditEntry.objects.count()
    bad = xlsx([["名称", "统一社会信用代码", "区域"], ["丙公司", valid_uscc(332), "华东"], ["丁公司", "123", "华东"]])
    response = client.post(f"{BASE}/customers/import", {"file": bad})
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert [(e["row"], e["column"]) for e in response.json()["errors"]] == [(3, "统一社会信用代码")]
    assert AuditEntry.objects.count() == before
    assert not Customer.objects.filter(name="丙公司").exists()


def test_import_projects_endpoint(world, as_user):
    sheet = xlsx(
        [
            ["code", "name", "customer", "project type", "region", "latitude", "longitude"],
            ["WH-01", "光谷大道", world.project.customer.uscc, "municipal_road", "central", 30.5, 114.4],
        ]
    )
    response = as_user(world.admin).post(f"{BASE}/projects/import", {"file": sheet})
    assert response.status_code == 201, response.content
    assert Project.objects.get(code="WH-01").longitude == Decimal("114.400000")


def test_anonymous_gets_401(client, world):
    response = client.get(f"{BASE}/customers")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_user_without_role_sees_nothing(world, as_user):
    nobody = UserFactory()
    MembershipFactory(user=nobody, project=world.project)
    client = as_user(nobody)
    assert client.get(f"{BASE}/customers").json()["count"] == 0
    assert client.get(f"{BASE}/projects").json()["count"] == 0


@pytest.mark.parametrize("path", ["projects", "customers", "suppliers", "project-types"])
def test_list_queries_do_not_grow_with_rows(world, as_user, path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from eoms.testing.factories import ProjectFactory

    client = as_user(world.admin)
    client.get(f"{BASE}/{path}")  # session and roles cached like any later request

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"{BASE}/{path}").status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for _ in range(5):
        ProjectFactory(manager=world.pm)
        SupplierFactory()
    assert count() == few
