"""Excel imports: all rows or none, every problem with its spreadsheet row and column, Chinese or
English headers, limits on what a file may hold."""

import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook, load_workbook

from eoms.accounts.models import ProjectMembership
from eoms.core.errors import PermissionDenied
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.masterdata import imports, sensitive, services
from eoms.masterdata.errors import MasterDataImportFailed
from eoms.masterdata.models import Customer, Project
from eoms.testing.factories import CustomerFactory, ProjectTypeFactory, valid_uscc

pytestmark = pytest.mark.django_db


def xlsx(rows: list[list]) -> bytes:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def upload(rows: list[list], name: str = "customers.xlsx") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, xlsx(rows), content_type=imports.XLSX_CONTENT_TYPE)


CODES = [valid_uscc(700 + i) for i in range(5)]


def _counts():
    return Customer.objects.count(), Project.objects.count(), AuditEntry.objects.count(), OutboxMessage.objects.count()


def test_good_file_with_english_headers_imports_every_row(world):
    before = _counts()
    result = services.import_customers_xlsx(
        actor=world.admin,
        file=upload(
            [
                ["name", "uscc", "region", "grade", "contact name", "contact mobile"],
                ["甲公司", CODES[0], "east", "a", "张三", 13800000001],
                ["乙公司", CODES[1].lower(), "North China", "", "", ""],
                [None, None, None, None, None, None],
                ["丙公司", CODES[2], "华南", "D", "", ""],
            ]
        ),
    )
    assert result.created == 3
    rows = {c.name: (c.uscc, c.region, c.grade) for c in Customer.objects.filter(pk__in=result.ids)}
    assert rows == {
        "甲公司": (CODES[0], "east", "A"),
        "乙公司": (CODES[1], "north", "C"),
        "丙公司": (CODES[2], "south", "D"),
    }
    contacts = Customer.objects.get(name="甲公司").contacts.all()
    assert [(c.name, sensitive.clear(c, "phone")) for c in contacts] == [("张三", "13800000001")]
    customers, projects, audit, outbox = _counts()
    assert (customers - before[0], audit - before[2], outbox - before[3]) == (3, 3, 3)


def test_chinese_headers_and_template_headers_are_understood(world):
    result = services.import_customers_xlsx(
        actor=world.admin,
        file=xlsx(
            [
                ["客户名称", "统一社会信用代码", "区域", "客户等级", "地址", "联系人", "联系人手机"],
                ["华东建设有限公司", CODES[0], "华东地区", "B", "上海市", "李四", "13900000002"],
            ]
        ),
    )
    assert result.created == 1
    template_headers = [c.header for c in imports.CUSTOMER_COLUMNS]
    result = services.import_customers_xlsx(
        actor=world.admin,
        file=xlsx(
            [
                template_headers,
                ["模板公司", CODES[1], "西北", "A", "西安市", "", "王五", "总工", "13700000003", "w@example.com"],
            ]
        ),
    )
    customer = Customer.objects.get(pk=result.ids[0])
    assert (customer.name, customer.region, customer.address) == ("模板公司", "northwest", "西安市")
    assert list(customer.contacts.values_list("name", "title", "email")) == [("王五", "总工", "w@example.com")]


def test_error_in_row_3_writes_nothing_and_names_row_and_column(world):
    before = _counts()
    bad = CODES[1][:17] + ("0" if CODES[1][-1] != "0" else "1")
    with pytest.raises(MasterDataImportFailed) as exc:
        services.import_customers_xlsx(
            actor=world.admin,
            file=upload(
                [
                    ["名称", "统一社会信用代码", "区域"],
                    ["甲公司", CODES[0], "华东"],
                    ["乙公司", bad, "华东"],
                    ["丙公司", CODES[2], "华东"],
                ]
            ),
        )
    assert exc.value.status == 422
    assert exc.value.code == "masterdata.import_failed"
    [error] = exc.value.errors
    assert (error["row"], error["column"]) == (3, "统一社会信用代码")
    assert f"“{bad[-1]}”" in error["message"]
    assert exc.value.detail == "Nothing was imported: 1 of 3 rows have problems."
    assert _counts() == before


def test_every_bad_row_and_duplicates_inside_the_file_are_reported(world):
    existing = CustomerFactory()
    with pytest.raises(MasterDataImportFailed) as exc:
        services.import_customers_xlsx(
            actor=world.admin,
            file=xlsx(
                [
                    ["uscc", "name", "region", "mobile"],
                    [CODES[0], "甲", "east", ""],
                    [CODES[0].lower(), "乙", "east", ""],
                    [existing.uscc, "丙", "mars", "12345"],
                    [CODES[3], "", "west", ""],
                ]
            ),
        )
    got = [(e["row"], e["column"]) for e in exc.value.errors]
    assert got == [
        (3, "uscc"),
        (4, "uscc"),
        (4, "region"),
        (4, "联系人 / contact name"),  # a contact without a name; the sheet has no such column
        (4, "mobile"),
        (5, "name"),
        (5, "region"),
    ]
    assert exc.value.errors[0]["message"] == "Repeats row 2 of this file."
    assert Customer.objects.filter(uscc=CODES[0]).count() == 0


def test_missing_required_column(world):
    with pytest.raises(MasterDataImportFailed) as exc:
        services.import_customers_xlsx(actor=world.admin, file=xlsx([["名称", "区域"], ["甲", "华东"]]))
    assert exc.value.errors == [
        {
            "row": 1,
            "column": "统一社会信用代码 / uscc",
            "message": "The required column “统一社会信用代码” (uscc) is missing.",
        }
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name,uscc\n", "This is not an Excel .xlsx file. Save it as “Excel Workbook (.xlsx)” and try again."),
        (b"PK\x03\x04broken", "This is not an Excel .xlsx file. Save it as “Excel Workbook (.xlsx)” and try again."),
    ],
)
def test_not_an_xlsx_file(world, content, message):
    with pytest.raises(MasterDataImportFailed) as exc:
        services.import_customers_xlsx(actor=world.admin, file=SimpleUploadedFile("x.xlsx", content))
    assert exc.value.errors == [{"row": None, "column": "", "message": message}]


def test_limits(world, monkeypatch):
    monkeypatch.setattr(imports, "MAX_IMPORT_ROWS", 3)
    rows = [["name", "uscc", "region"]] + [[f"公司{i}", CODES[i], "east"] for i in range(4)]
    with pytest.raises(MasterDataImportFailed) as exc:
        services.import_customers_xlsx(actor=world.admin, file=xlsx(rows))
    assert exc.value.errors[0]["message"] == "A file may hold at most 3 rows below the header; split it."
    with pytest.raises(MasterDataImportFailed) as exc:
        services.import_customers_xlsx(actor=world.admin, file=xlsx([["name", "uscc", "region"]]))
    assert exc.value.errors == [{"row": 2, "column": "", "message": "There are no rows below the header."}]
    monkeypatch.setattr(imports, "MAX_IMPORT_BYTES", 2 * 1024 * 1024)
    big = SimpleUploadedFile("big.xlsx", b"PK" + b"\0" * (2 * 1024 * 1024))
    with pytest.raises(MasterDataImportFailed) as exc:
        services.import_customers_xlsx(actor=world.admin, file=big)
    assert exc.value.errors[0]["message"] == "The file is larger than 2 MB; split it into smaller files."
    assert Customer.objects.filter(uscc__in=CODES).count() == 0


def test_only_admin_imports(world):
    with pytest.raises(PermissionDenied):
        services.import_customers_xlsx(actor=world.auditor, file=xlsx([["name"], ["x"]]))
    with pytest.raises(PermissionDenied):
        services.import_projects_xlsx(actor=world.pm, file=xlsx([["name"], ["x"]]))


def test_projects_import_resolves_customer_type_and_manager(world):
    customer = world.project.customer
    ProjectTypeFactory(code="bridge", name="桥梁", name_en="Bridges")
    result = services.import_projects_xlsx(
        actor=world.admin,
        file=xlsx(
            [
                ["项目编码", "项目名称", "客户", "项目类型", "区域", "纬度", "经度", "围栏半径（米）", "项目经理"],
                ["NJ-01", "江北大桥", customer.uscc, "桥梁", "华东", 32.0603, 118.7969, 800, world.pm.username],
                ["NJ-02", "江心洲道路", customer.name, "municipal_road", "east", None, None, None, None],
            ]
        ),
    )
    assert result.created == 2
    first = Project.objects.get(code="NJ-01")
    assert (first.customer_id, first.project_type.code, first.latitude, first.geofence_radius_m, first.manager_id) == (
        customer.id,
        "bridge",
        Decimal("32.060300"),
        800,
        world.pm.id,
    )
    assert ProjectMembership.objects.get(project=first, user=world.pm).role == "pm"
    second = Project.objects.get(code="NJ-02")
    assert (second.latitude, second.geofence_radius_m, second.manager_id) == (None, 500, None)


def test_projects_import_reports_bad_references_and_nothing_is_written(world):
    before = _counts()
    with pytest.raises(MasterDataImportFailed) as exc:
        services.import_projects_xlsx(
            actor=world.admin,
            file=xlsx(
                [
                    ["code", "name", "customer", "project type", "region", "latitude", "longitude", "manager"],
                    ["A-1", "一", world.project.customer.uscc, "municipal_road", "east", 31, 121, ""],
                    ["A-1", "二", "无此客户", "nothing", "east", 100, 121, "nobody"],
                    [world.project.code, "三", world.project.customer.uscc, "municipal_road", "east", 31, None, ""],
                ]
            ),
        )
    got = {(e["row"], e["column"]): e["message"] for e in exc.value.errors}
    assert got == {
        (3, "customer"): "No customer has the credit code or name “无此客户”.",
        (3, "project type"): "No project type has the code or name “nothing”.",
        (3, "manager"): "No active user has the username “nobody”.",
        (3, "latitude"): "Must be between -90 and 90 degrees.",
        (3, "code"): "Repeats row 2 of this file.",
        (4, "code"): f"A project with code {world.project.code} already exists.",
        (4, "longitude"): "Give both latitude and longitude, or neither.",
    }
    assert _counts() == before


def test_templates_have_the_headers_the_importer_reads(world):
    sheet = load_workbook(io.BytesIO(imports.customer_template_xlsx())).worksheets[0]
    assert [c.value for c in sheet[1]] == [c.header for c in imports.CUSTOMER_COLUMNS]
    workbook = load_workbook(io.BytesIO(imports.project_template_xlsx([world.project.project_type])))
    assert [c.value for c in workbook.worksheets[0][1]] == [c.header for c in imports.PROJECT_COLUMNS]
    notes = [row for row in workbook.worksheets[1].iter_rows(values_only=True) if row[0] == "项目类型 / project type"]
    assert notes[-1][1] == "municipal_road = 市政道路"
