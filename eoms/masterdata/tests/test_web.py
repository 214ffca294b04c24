"""Master data pages: lists, details, forms that call the services, the Excel import page, and
buttons and POSTs only for those allowed."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import Workbook, load_workbook

from eoms.accounts.models import ProjectMembership
from eoms.core.models import AuditEntry
from eoms.masterdata import sensitive
from eoms.masterdata.models import Customer, Project, ProjectType, Supplier
from eoms.masterdata.tests.sealed import add_contact
from eoms.testing.factories import CustomerFactory, SupplierFactory, UserFactory, valid_uscc
from eoms.testing.matrix import REQUEST_EVENTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user(client):
    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture(autouse=True)
def _english(settings):
    settings.LANGUAGE_CODE = "en"


def xlsx_upload(rows) -> SimpleUploadedFile:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return SimpleUploadedFile("customers.xlsx", out.getvalue())


def test_lists_render_for_every_role(world, as_user):
    SupplierFactory(name="浙江固基桩基工程有限公司")
    for user in world.by_role.values():
        client = as_user(user)
        for name in ("projects", "customers", "suppliers", "project_types"):
            response = client.get(reverse(f"masterdata:{name}"))
            assert response.status_code == 200, (user, name)


def test_project_list_is_scoped_and_searchable(world, as_user):
    client = as_user(world.outsider)
    page = client.get(reverse("masterdata:projects")).content.decode()
    assert world.other_project.code in page
    assert world.project.code not in page
    client = as_user(world.admin)
    page = client.get(reverse("masterdata:projects"), {"q": world.other_project.code}).content.decode()
    assert world.other_project.code in page and world.project.code not in page
    assert client.get(reverse("masterdata:project_detail", args=[world.project.id])).status_code == 200
    outsider = as_user(world.outsider)
    assert outsider.get(reverse("masterdata:project_detail", args=[world.project.id])).status_code == 404


def test_customer_list_pages(world, as_user):
    for i in range(30):
        CustomerFactory(name=f"分页客户{i:02d}")
    client = as_user(world.finance)
    first = client.get(reverse("masterdata:customers"), {"q": "分页客户"})
    assert first.context["page_obj"].paginator.count == 30
    assert len(first.context["page_obj"]) == 25
    second = client.get(reverse("masterdata:customers"), {"q": "分页客户", "page": 2})
    assert [c.name for c in second.context["page_obj"]] == [f"分页客户{i:02d}" for i in range(25, 30)]
    assert "q=%E5%88%86%E9%A1%B5%E5%AE%A2%E6%88%B7&amp;page=1" in second.content.decode()


def test_create_customer_via_form(world, as_user):
    client = as_user(world.admin)
    code = valid_uscc(410)
    response = client.post(
        reverse("masterdata:customer_create"),
        {
            "name": "杭州钱潮基础设施开发有限公司",
            "uscc": code,
            "region": "east",
            "grade": "B",
            "address": "",
            "notes": "",
            "contacts-TOTAL_FORMS": "1",
            "contacts-INITIAL_FORMS": "0",
            "contacts-0-name": "沈佳琪",
            "contacts-0-title": "项目总监",
            "contacts-0-phone": "13906540102",
            "contacts-0-email": "",
        },
    )
    customer = Customer.objects.get(uscc=code)
    assert response.status_code == 302
    assert response["Location"] == reverse("masterdata:customer_detail", args=[customer.id])
    assert [(c.name, sensitive.clear(c, "phone")) for c in customer.contacts.all()] == [("沈佳琪", "13906540102")]
    detail = client.get(response["Location"]).content.decode()
    assert "沈佳琪" in detail and code in detail


def test_bad_input_shows_translated_field_errors(world, as_user):
    client = as_user(world.admin)
    code = valid_uscc(411)
    bad = code[:17] + ("1" if code[-1] == "0" else "0")
    before = AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count()
    response = client.post(
        reverse("masterdata:customer_create"),
        {
            "name": "某公司",
            "uscc": bad,
            "region": "east",
            "grade": "C",
            "contacts-TOTAL_FORMS": "1",
            "contacts-INITIAL_FORMS": "0",
            "contacts-0-name": "甲",
            "contacts-0-phone": "12345",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["uscc"] == [
        f"The check character “{bad[-1]}” does not match the first 17 characters (they give “{code[-1]}”); "
        "look for a typo."
    ]
    assert response.context["formset"].forms[0].errors["phone"] == [
        "A mobile number has 11 digits and starts with 1, e.g. 13812345678."
    ]
    assert 'class="form-control is-invalid"' in response.content.decode()
    assert AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count() == before
    chinese = client.post(
        reverse("masterdata:customer_create"),
        {
            "name": "",
            "uscc": code,
            "region": "east",
            "grade": "C",
            "contacts-TOTAL_FORMS": "0",
            "contacts-INITIAL_FORMS": "0",
        },
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert chinese.status_code == 200
    assert chinese.context["form"].errors["name"] == ["这个字段是必填项。"]
    assert not Customer.objects.filter(uscc=code).exists()


def test_edit_customer_and_stale_form(world, as_user):
    customer = CustomerFactory(grade="B")
    add_contact(customer, name="甲", phone="13800000000")
    client = as_user(world.admin)
    url = reverse("masterdata:customer_edit", args=[customer.id])
    form = {
        "version": "1",
        "name": customer.name,
        "uscc": customer.uscc,
        "region": "east",
        "grade": "A",
        "address": "",
        "notes": "",
        "contacts-TOTAL_FORMS": "2",
        "contacts-INITIAL_FORMS": "1",
        "contacts-0-name": "甲",
        "contacts-0-phone": "13800000000",
        "contacts-1-name": "乙",
    }
    assert client.post(url, form).status_code == 302
    customer.refresh_from_db()
    assert (customer.grade, customer.version) == ("A", 2)
    assert sorted(customer.contacts.values_list("name", flat=True)) == ["乙", "甲"]
    stale = client.post(url, {**form, "grade": "D"})
    assert stale["Location"] == url
    reloaded = client.get(url)
    assert [str(m) for m in reloaded.context["messages"]] == [
        f"Customer {customer.name} saved.",
        f"{customer.name} was changed by someone else while you were editing. "
        "The form now shows the saved values; make your change again.",
    ]
    assert reloaded.context["form"].initial["grade"] == "A"
    assert reloaded.context["form"]["version"].value() == 2
    customer.refresh_from_db()
    assert customer.grade == "A"


def test_delete_customer_page(world, as_user):
    client = as_user(world.admin)
    in_use = client.post(reverse("masterdata:customer_delete", args=[world.project.customer_id]), follow=True)
    assert "cannot be deleted" in in_use.content.decode()
    spare = CustomerFactory()
    response = client.post(reverse("masterdata:customer_delete", args=[spare.id]))
    assert response["Location"] == reverse("masterdata:customers")
    assert not Customer.objects.filter(pk=spare.pk).exists()


def test_auditor_sees_no_edit_buttons_and_gets_403_on_post(world, as_user):
    customer = world.project.customer
    supplier = SupplierFactory()
    client = as_user(world.auditor)
    pages = {
        reverse("masterdata:customers"): ['id="new-customer"', 'id="import-customers"'],
        reverse("masterdata:customer_detail", args=[customer.id]): ['id="edit-customer"', 'id="delete-customer"'],
        reverse("masterdata:projects"): ['id="new-project"', 'id="import-projects"'],
        reverse("masterdata:project_detail", args=[world.project.id]): ['id="edit-project"', 'id="add-member"'],
        reverse("masterdata:suppliers"): ['id="new-supplier"'],
        reverse("masterdata:supplier_detail", args=[supplier.id]): ['id="edit-supplier"'],
        reverse("masterdata:project_types"): ['id="project-type-form"'],
    }
    for url, buttons in pages.items():
        page = client.get(url).content.decode()
        for button in buttons:
            assert button not in page, (url, button)
    before = AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count()
    posts = [
        (reverse("masterdata:customer_create"), {"name": "某", "uscc": valid_uscc(412), "region": "east"}),
        (reverse("masterdata:customer_edit", args=[customer.id]), {"name": "改"}),
        (reverse("masterdata:customer_delete", args=[customer.id]), {}),
        (reverse("masterdata:customer_import"), {}),
        (reverse("masterdata:project_create"), {"code": "X"}),
        (reverse("masterdata:project_edit", args=[world.project.id]), {"name": "改"}),
        (reverse("masterdata:project_member_add", args=[world.project.id]), {"user": str(world.auditor.id)}),
        (reverse("masterdata:project_member_remove", args=[world.project.id, world.finance.id]), {}),
        (reverse("masterdata:project_import"), {}),
        (reverse("masterdata:supplier_create"), {"name": "某"}),
        (reverse("masterdata:supplier_edit", args=[supplier.id]), {"name": "改"}),
        (reverse("masterdata:project_types"), {"code": "x", "name": "x"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert client.get(reverse("masterdata:customer_template")).status_code == 403
    assert AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count() == before
    assert Customer.objects.filter(pk=customer.pk, name=customer.name).exists()


def test_admin_sees_the_buttons(world, as_user):
    client = as_user(world.admin)
    page = client.get(reverse("masterdata:customers")).content.decode()
    assert 'id="new-customer"' in page and 'id="import-customers"' in page
    page = client.get(reverse("masterdata:project_detail", args=[world.project.id])).content.decode()
    assert 'id="edit-project"' in page and 'id="add-member"' in page


def test_project_detail_shows_the_site_and_members(world, as_user):
    page = as_user(world.engineer).get(reverse("masterdata:project_detail", args=[world.project.id])).content.decode()
    assert '<td id="site-latitude">31.230416°</td>' in page
    assert '<td id="site-longitude">121.473701°</td>' in page
    assert "https://www.openstreetmap.org/?mlat=31.230416&amp;mlon=121.473701" in page
    assert world.finance.username in page
    assert 'id="edit-project"' not in page and 'id="add-member"' not in page


def test_manager_edits_site_and_members(world, as_user):
    client = as_user(world.pm)
    form_page = client.get(reverse("masterdata:project_edit", args=[world.project.id]))
    assert set(form_page.context["form"].fields) == {
        "version",
        "name",
        "province",
        "city",
        "address",
        "latitude",
        "longitude",
        "geofence_radius_m",
    }
    response = client.post(
        reverse("masterdata:project_edit", args=[world.project.id]),
        {
            "version": "1",
            "name": world.project.name,
            "province": "上海市",
            "city": "上海市",
            "address": "浦东新区",
            "latitude": "31.230416",
            "longitude": "121.473701",
            "geofence_radius_m": "800",
        },
    )
    assert response.status_code == 302
    project = Project.objects.get(pk=world.project.pk)
    assert (project.address, project.geofence_radius_m, project.version) == ("浦东新区", 800, 2)
    assert AuditEntry.objects.filter(object_id=str(project.id), action="masterdata.project_updated").get().changes == {
        "address": ["", "浦东新区"],
        "geofence_radius_m": [500, 800],
    }
    newcomer = UserFactory()
    added = client.post(
        reverse("masterdata:project_member_add", args=[project.id]), {"user": str(newcomer.id), "role": "engineer"}
    )
    assert added.status_code == 302
    assert ProjectMembership.objects.get(project=project, user=newcomer).role == "engineer"
    removed = client.post(reverse("masterdata:project_member_remove", args=[project.id, newcomer.id]))
    assert removed.status_code == 302
    assert not ProjectMembership.objects.filter(project=project, user=newcomer).exists()
    refused = client.post(reverse("masterdata:project_member_remove", args=[project.id, world.pm.id]), follow=True)
    assert "choose another manager" in refused.content.decode()


def test_project_create_form_errors_and_success(world, as_user):
    client = as_user(world.admin)
    data = {
        "code": world.project.code,
        "name": "新项目",
        "customer": str(world.project.customer_id),
        "project_type": str(world.project.project_type_id),
        "region": "east",
        "latitude": "31.2",
        "longitude": "",
        "geofence_radius_m": "500",
        "manager": "",
    }
    response = client.post(reverse("masterdata:project_create"), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["code"] == [f"A project with code {world.project.code} already exists."]
    assert errors["longitude"] == ["Give both latitude and longitude, or neither."]
    response = client.post(
        reverse("masterdata:project_create"),
        {**data, "code": "NEW-1", "longitude": "121.5", "manager": str(world.pm.id)},
    )
    project = Project.objects.get(code="NEW-1")
    assert response["Location"] == reverse("masterdata:project_detail", args=[project.id])
    assert project.manager_id == world.pm.id


def test_supplier_and_project_type_forms(world, as_user):
    client = as_user(world.admin)
    response = client.post(
        reverse("masterdata:supplier_create"),
        {"name": "上海沪安机电", "uscc": valid_uscc(413), "kind": "subcontractor", "region": "east"},
    )
    supplier = Supplier.objects.get(name="上海沪安机电")
    assert response["Location"] == reverse("masterdata:supplier_detail", args=[supplier.id])
    response = client.post(
        reverse("masterdata:supplier_edit", args=[supplier.id]),
        {"version": "1", "name": "上海沪安机电", "uscc": supplier.uscc, "kind": "subcontractor", "region": "east"},
    )
    supplier.refresh_from_db()
    assert (response.status_code, supplier.is_active, supplier.version) == (302, False, 2)
    response = client.post(
        reverse("masterdata:project_types"), {"code": "tunnel", "name": "隧道", "name_en": "Tunnels"}
    )
    assert response.status_code == 302
    assert ProjectType.objects.filter(code="tunnel").exists()
    response = client.post(reverse("masterdata:project_types"), {"code": "tunnel", "name": "隧道"})
    assert response.context["form"].errors["code"] == ["A project type with this code already exists."]


def test_import_page_shows_the_error_table_and_imports(world, as_user):
    client = as_user(world.admin)
    template = client.get(reverse("masterdata:customer_template"))
    assert template["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert load_workbook(io.BytesIO(template.content)).worksheets[0]["B1"].value == "统一社会信用代码 / uscc *"
    assert client.get(reverse("masterdata:project_template")).status_code == 200
    bad = xlsx_upload([["名称", "统一社会信用代码", "区域"], ["甲", valid_uscc(414), "华东"], ["乙", "91", "华东"]])
    response = client.post(reverse("masterdata:customer_import"), {"file": bad})
    assert response.status_code == 200
    assert response.context["errors"] == [
        {
            "row": 3,
            "column": "统一社会信用代码",
            "message": "A unified social credit code has 18 characters; this one has 2.",
        }
    ]
    page = response.content.decode()
    assert 'id="import-errors"' in page and "<td>3</td><td>统一社会信用代码</td>" in page
    assert not Customer.objects.filter(name="甲").exists()
    good = xlsx_upload([["名称", "统一社会信用代码", "区域"], ["甲", valid_uscc(414), "华东"]])
    response = client.post(reverse("masterdata:customer_import"), {"file": good})
    assert response["Location"] == reverse("masterdata:customers")
    assert Customer.objects.filter(name="甲").count() == 1


def test_anonymous_is_sent_to_login(client, world):
    response = client.get(reverse("masterdata:customers"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_back_office_is_read_only(world, as_user):
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client = as_user(admin_user)
    customer = world.project.customer
    assert client.get(reverse("admin:masterdata_customer_changelist")).status_code == 200
    assert client.get(reverse("admin:masterdata_project_changelist")).status_code == 200
    assert client.get(reverse("admin:masterdata_customer_add")).status_code == 403
    assert (
        client.post(reverse("admin:masterdata_customer_delete", args=[customer.id]), {"post": "yes"}).status_code == 403
    )
    view = client.get(reverse("admin:masterdata_customer_change", args=[customer.id]))
    assert view.status_code == 200 and 'name="_save"' not in view.content.decode()
    assert Customer.objects.filter(pk=customer.pk).exists()
