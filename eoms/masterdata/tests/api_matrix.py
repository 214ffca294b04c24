"""Who may call each master data endpoint (see eoms.testing.matrix). Projects are scoped: the outsider
(manager of another project) does not see world.project (404). Customers, project types and suppliers
are company-wide reference data every signed-in user reads and only an administrator writes (403 for
the others, the outsider included). A project may also be changed, and its members managed, by its
manager (world.pm)."""

import io
import uuid

from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook

from eoms.testing.factories import CustomerFactory, MembershipFactory, SupplierFactory, UserFactory, valid_uscc

BASE = "/api/v1/masterdata"
EVERYONE = ("admin", "project_manager", "approver", "field_engineer", "finance", "auditor")
SIGNED_IN = (*EVERYONE, "outsider")
ADMIN_ONLY = {"admin"}
ADMIN_OR_MANAGER = {"admin", "project_manager"}


def expect(ok: int, allowed, *, denied: int = 403, outsider: int = 404) -> dict[str, int]:
    """`ok` for the identities in `allowed`; the others signed in get `denied`, the outsider `outsider`
    (unless allowed), anonymous 401. The same rule as eoms.testing.matrix.expect, kept here because
    masterdata may not import what that module imports (the whole API, orders included)."""
    statuses = {}
    for identity in (*SIGNED_IN, "anonymous"):
        if identity in allowed:
            statuses[identity] = ok
        elif identity == "anonymous":
            statuses[identity] = 401
        elif identity == "outsider":
            statuses[identity] = outsider
        else:
            statuses[identity] = denied
    return statuses


def _fresh_uscc() -> str:
    return valid_uscc(uuid.uuid4().int % 10**9)


def _fresh_code(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _xlsx(rows) -> SimpleUploadedFile:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return SimpleUploadedFile("import.xlsx", out.getvalue())


def _create_customer(world):
    return {
        "path": f"{BASE}/customers",
        "json": {"name": "矩阵测试客户", "uscc": _fresh_uscc(), "region": "east", "contacts": [{"name": "甲"}]},
    }


def _import_customers(world):
    rows = [["名称", "统一社会信用代码", "区域"], ["矩阵导入客户", _fresh_uscc(), "华东"]]
    return {"path": f"{BASE}/customers/import", "multipart": {"file": _xlsx(rows)}}


def _delete_customer(world):
    return {"path": f"{BASE}/customers/{CustomerFactory().id}"}


def _create_project(world):
    return {
        "path": f"{BASE}/projects",
        "json": {
            "code": _fresh_code("MX"),
            "name": "矩阵测试项目",
            "customer_id": str(world.project.customer_id),
            "project_type_id": str(world.project.project_type_id),
            "region": "east",
            "latitude": "31.2",
            "longitude": "121.5",
        },
    }


def _import_projects(world):
    rows = [
        ["项目编码", "项目名称", "客户", "项目类型", "区域"],
        [_fresh_code("MI"), "矩阵导入项目", world.project.customer.uscc, world.project.project_type.code, "华东"],
    ]
    return {"path": f"{BASE}/projects/import", "multipart": {"file": _xlsx(rows)}}


def _add_member(world):
    return {
        "path": f"{BASE}/projects/{world.project.id}/members",
        "json": {"user_id": str(UserFactory().id), "role": "viewer"},
    }


def _remove_member(world):
    member = MembershipFactory(project=world.project).user
    return {"path": f"{BASE}/projects/{world.project.id}/members/{member.id}"}


ENDPOINTS = {
    # customers
    ("GET", f"{BASE}/customers"): {
        "request": lambda w: {"path": f"{BASE}/customers"},
        "expect": expect(200, SIGNED_IN),
    },
    ("POST", f"{BASE}/customers"): {"request": _create_customer, "expect": expect(201, ADMIN_ONLY, outsider=403)},
    ("POST", f"{BASE}/customers/import"): {
        "request": _import_customers,
        "expect": expect(201, ADMIN_ONLY, outsider=403),
    },
    ("GET", f"{BASE}/customers/{{customer_id}}"): {
        "request": lambda w: {"path": f"{BASE}/customers/{w.project.customer_id}"},
        "expect": expect(200, SIGNED_IN),
    },
    ("PATCH", f"{BASE}/customers/{{customer_id}}"): {
        "request": lambda w: {"path": f"{BASE}/customers/{w.project.customer_id}", "json": {"grade": "A"}},
        "expect": expect(200, ADMIN_ONLY, outsider=403),
    },
    ("DELETE", f"{BASE}/customers/{{customer_id}}"): {
        "request": _delete_customer,
        "expect": expect(204, ADMIN_ONLY, outsider=403),
    },
    # project types
    ("GET", f"{BASE}/project-types"): {
        "request": lambda w: {"path": f"{BASE}/project-types"},
        "expect": expect(200, SIGNED_IN),
    },
    ("POST", f"{BASE}/project-types"): {
        "request": lambda w: {
            "path": f"{BASE}/project-types",
            "json": {"code": _fresh_code("type"), "name": "矩阵类型"},
        },
        "expect": expect(201, ADMIN_ONLY, outsider=403),
    },
    # projects
    ("GET", f"{BASE}/projects"): {
        "request": lambda w: {"path": f"{BASE}/projects"},
        "expect": expect(200, SIGNED_IN),
    },
    ("POST", f"{BASE}/projects"): {"request": _create_project, "expect": expect(201, ADMIN_ONLY, outsider=403)},
    ("POST", f"{BASE}/projects/import"): {
        "request": _import_projects,
        "expect": expect(201, ADMIN_ONLY, outsider=403),
    },
    ("GET", f"{BASE}/projects/{{project_id}}"): {
        "request": lambda w: {"path": f"{BASE}/projects/{w.project.id}"},
        "expect": expect(200, EVERYONE),
    },
    ("PATCH", f"{BASE}/projects/{{project_id}}"): {
        "request": lambda w: {"path": f"{BASE}/projects/{w.project.id}", "json": {"address": "矩阵路1号"}},
        "expect": expect(200, ADMIN_OR_MANAGER),
    },
    ("GET", f"{BASE}/projects/{{project_id}}/members"): {
        "request": lambda w: {"path": f"{BASE}/projects/{w.project.id}/members"},
        "expect": expect(200, EVERYONE),
    },
    ("POST", f"{BASE}/projects/{{project_id}}/members"): {
        "request": _add_member,
        "expect": expect(201, ADMIN_OR_MANAGER),
    },
    ("DELETE", f"{BASE}/projects/{{project_id}}/members/{{user_id}}"): {
        "request": _remove_member,
        "expect": expect(204, ADMIN_OR_MANAGER),
    },
    # suppliers
    ("GET", f"{BASE}/suppliers"): {
        "request": lambda w: {"path": f"{BASE}/suppliers"},
        "expect": expect(200, SIGNED_IN),
    },
    ("POST", f"{BASE}/suppliers"): {
        "request": lambda w: {
            "path": f"{BASE}/suppliers",
            "json": {"name": "矩阵供应商", "uscc": _fresh_uscc(), "kind": "supplier", "region": "east"},
        },
        "expect": expect(201, ADMIN_ONLY, outsider=403),
    },
    ("GET", f"{BASE}/suppliers/{{supplier_id}}"): {
        "request": lambda w: {"path": f"{BASE}/suppliers/{SupplierFactory().id}"},
        "expect": expect(200, SIGNED_IN),
    },
    ("PATCH", f"{BASE}/suppliers/{{supplier_id}}"): {
        "request": lambda w: {"path": f"{BASE}/suppliers/{SupplierFactory().id}", "json": {"is_active": False}},
        "expect": expect(200, ADMIN_ONLY, outsider=403),
    },
}


# Reveal of encrypted values: administrators and finance only (ASVS V8.2.1), each one audited.
REVEALERS = {"admin", "finance"}
ENDPOINTS[("POST", f"{BASE}/customers/{{customer_id}}/reveal")] = {
    "request": lambda w: {
        "path": f"{BASE}/customers/{w.project.customer_id}/reveal",
        "json": {"field": "id_card_number"},
    },
    "expect": expect(200, REVEALERS, outsider=403),
}
ENDPOINTS[("POST", f"{BASE}/suppliers/{{supplier_id}}/reveal")] = {
    "request": lambda w: {"path": f"{BASE}/suppliers/{SupplierFactory().id}/reveal", "json": {"field": "bank_account"}},
    "expect": expect(200, REVEALERS, outsider=403),
}
