"""Master data API: customers (with contacts), projects (sites) and their members, project types,
suppliers, and Excel imports. Every endpoint authenticates; projects are scoped to the caller
(others answer 404), the rest is company-wide reference data that only an administrator changes."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import File, Query, Router, Schema
from ninja.files import UploadedFile
from pydantic import Field

from eoms.accounts.roles import ProjectRole
from eoms.core.api import ProblemSchema, Ref, UserRef
from eoms.core.errors import ValidationFailed
from eoms.core.ratelimit import EXPENSIVE

from . import policies, selectors, sensitive, services
from .models import Customer, CustomerGrade, Project, Region, Supplier, SupplierKind

router = Router(tags=["master data"])

ERRORS = {400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 422: ProblemSchema}
MAX_PAGE_SIZE = 200


# ------------------------------------------------------------------------------------------ schemas


class PageIn(Schema):
    q: str = Field("", max_length=100, description="Search in names and codes")
    page: int = Field(1, ge=1, le=100000)
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)


class ContactIn(Schema):
    name: str = Field(max_length=100)
    title: str = Field("", max_length=100)
    phone: str = Field("", max_length=20, description="Mobile: 11 digits starting with 1")
    email: str = Field("", max_length=254)


class ContactOut(Schema):
    id: uuid.UUID
    name: str
    title: str
    phone: str = Field(description="Masked (138****1234); POST …/reveal for the clear value")
    email: str


class CustomerIn(Schema):
    name: str = Field(max_length=200)
    uscc: str = Field(max_length=40, description="Unified social credit code (18 characters, GB 32100-2015)")
    region: Region
    grade: CustomerGrade = CustomerGrade.C
    address: str = Field("", max_length=300)
    notes: str = Field("", max_length=5000)
    id_card_number: str = Field("", max_length=40, description="Resident identity card number (stored encrypted)")
    contacts: list[ContactIn] = Field(default_factory=list, max_length=20)


class CustomerPatchIn(Schema):
    version: int | None = Field(None, description="The version you read; a newer one on the server answers 409")
    name: str | None = Field(None, max_length=200)
    uscc: str | None = Field(None, max_length=40)
    region: Region | None = None
    grade: CustomerGrade | None = None
    address: str | None = Field(None, max_length=300)
    notes: str | None = Field(None, max_length=5000)
    id_card_number: str | None = Field(None, max_length=40, description="Empty removes it")
    contacts: list[ContactIn] | None = Field(None, max_length=20, description="Replaces every contact")


class CustomerOut(Schema):
    id: uuid.UUID
    name: str
    uscc: str
    region: Region
    region_label: str
    grade: CustomerGrade
    address: str
    version: int
    created_at: datetime
    updated_at: datetime


class ProjectRef(Schema):
    id: uuid.UUID
    code: str
    name: str


class CustomerDetailOut(CustomerOut):
    notes: str
    id_card_number: str = Field(description="Masked (1101**********1234); POST …/reveal for the clear value")
    contacts: list[ContactOut]
    projects: list[ProjectRef]


class CustomerPage(Schema):
    count: int
    page: int
    page_size: int
    results: list[CustomerOut]


class CustomerFilterIn(PageIn):
    region: Region | None = None


class ProjectTypeIn(Schema):
    code: str = Field(max_length=40)
    name: str = Field(max_length=100)
    name_en: str = Field("", max_length=100)


class ProjectTypeOut(Schema):
    id: uuid.UUID
    code: str
    name: str
    name_en: str


class ProjectIn(Schema):
    code: str = Field(max_length=40)
    name: str = Field(max_length=200)
    customer_id: uuid.UUID
    project_type_id: uuid.UUID
    region: Region
    province: str = Field("", max_length=40)
    city: str = Field("", max_length=40)
    address: str = Field("", max_length=300)
    latitude: Decimal | None = Field(None, ge=-90, le=90, description="WGS-84 degrees")
    longitude: Decimal | None = Field(None, ge=-180, le=180, description="WGS-84 degrees")
    geofence_radius_m: int = Field(500, ge=10, le=50000)
    manager_id: uuid.UUID | None = Field(None, description="A project manager; becomes a member with role pm")


class ProjectPatchIn(Schema):
    version: int | None = Field(None, description="The version you read; a newer one on the server answers 409")
    code: str | None = Field(None, max_length=40)
    name: str | None = Field(None, max_length=200)
    customer_id: uuid.UUID | None = None
    project_type_id: uuid.UUID | None = None
    region: Region | None = None
    province: str | None = Field(None, max_length=40)
    city: str | None = Field(None, max_length=40)
    address: str | None = Field(None, max_length=300)
    latitude: Decimal | None = Field(None, ge=-90, le=90)
    longitude: Decimal | None = Field(None, ge=-180, le=180)
    geofence_radius_m: int | None = Field(None, ge=10, le=50000)
    manager_id: uuid.UUID | None = None
    is_active: bool | None = None


class ProjectOut(Schema):
    id: uuid.UUID
    code: str
    name: str
    customer: Ref
    project_type: ProjectTypeOut
    region: Region
    region_label: str
    province: str
    city: str
    address: str
    latitude: Decimal | None
    longitude: Decimal | None
    geofence_radius_m: int
    manager: UserRef | None
    is_active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class MemberOut(Schema):
    user: UserRef
    role: ProjectRole
    since: datetime


class MemberIn(Schema):
    user_id: uuid.UUID
    role: ProjectRole = ProjectRole.VIEWER


class ProjectDetailOut(ProjectOut):
    members: list[MemberOut]
    editable_fields: list[str]
    can_manage_members: bool


class ProjectPage(Schema):
    count: int
    page: int
    page_size: int
    results: list[ProjectOut]


class ProjectFilterIn(PageIn):
    region: Region | None = None
    customer: uuid.UUID | None = None
    active: bool | None = None


class SupplierIn(Schema):
    name: str = Field(max_length=200)
    uscc: str = Field(max_length=40)
    kind: SupplierKind
    region: Region
    contact_name: str = Field("", max_length=100)
    contact_phone: str = Field("", max_length=20)
    bank_account: str = Field("", max_length=40, description="12 to 19 digits (stored encrypted)")
    qualification: str = Field("", max_length=200)


class SupplierPatchIn(Schema):
    version: int | None = Field(None, description="The version you read; a newer one on the server answers 409")
    name: str | None = Field(None, max_length=200)
    uscc: str | None = Field(None, max_length=40)
    kind: SupplierKind | None = None
    region: Region | None = None
    contact_name: str | None = Field(None, max_length=100)
    contact_phone: str | None = Field(None, max_length=20)
    bank_account: str | None = Field(None, max_length=40)
    qualification: str | None = Field(None, max_length=200)
    is_active: bool | None = None


class SupplierOut(Schema):
    id: uuid.UUID
    name: str
    uscc: str
    kind: SupplierKind
    region: Region
    region_label: str
    contact_name: str
    contact_phone: str = Field(description="Masked (138****1234)")
    bank_account: str = Field(description="Masked (6222 **** **** 1234)")
    qualification: str
    is_active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class SupplierPage(Schema):
    count: int
    page: int
    page_size: int
    results: list[SupplierOut]


class SupplierFilterIn(PageIn):
    kind: SupplierKind | None = None
    region: Region | None = None


class CustomerRevealIn(Schema):
    field: Literal["id_card_number", "phone"]
    contact_id: uuid.UUID | None = Field(None, description="The contact whose mobile (field phone) to reveal")


class SupplierRevealIn(Schema):
    field: Literal["contact_phone", "bank_account"]


class RevealOut(Schema):
    field: str
    value: str


class ImportOut(Schema):
    created: int
    ids: list[uuid.UUID]


# ------------------------------------------------------------------------------------------ helpers


def _page(qs, f: PageIn, render) -> dict:
    start = (f.page - 1) * f.page_size
    return {
        "count": qs.count(),
        "page": f.page,
        "page_size": f.page_size,
        "results": [render(o) for o in qs[start : start + f.page_size]],
    }


def _user(u) -> dict | None:
    return None if u is None else {"id": u.id, "username": u.username, "display_name": u.display_name or u.username}


def _no_nulls(data: dict, fields) -> None:
    nulls = [f for f in fields if f in data and data[f] is None]
    if nulls:
        raise ValidationFailed(errors=[{"field": f, "message": _("May not be null.")} for f in nulls])


def customer_out(c: Customer) -> dict:
    return {
        "id": c.id,
        "name": c.name,
        "uscc": c.uscc,
        "region": c.region,
        "region_label": str(c.get_region_display()),
        "grade": c.grade,
        "address": c.address,
        "version": c.version,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def customer_detail(actor, c: Customer) -> dict:
    return {
        **customer_out(c),
        "notes": c.notes,
        "id_card_number": sensitive.masked(c, "id_card_number"),
        "contacts": [
            {"id": x.id, "name": x.name, "title": x.title, "phone": sensitive.masked(x, "phone"), "email": x.email}
            for x in c.contacts.order_by("created_at", "id")
        ],
        "projects": [
            {"id": p.id, "code": p.code, "name": p.name}
            for p in selectors.list_customer_projects(actor=actor, customer=c)
        ],
    }


def project_out(p: Project) -> dict:
    return {
        "id": p.id,
        "code": p.code,
        "name": p.name,
        "customer": {"id": p.customer_id, "name": p.customer.name},
        "project_type": p.project_type,
        "region": p.region,
        "region_label": str(p.get_region_display()),
        "province": p.province,
        "city": p.city,
        "address": p.address,
        "latitude": p.latitude,
        "longitude": p.longitude,
        "geofence_radius_m": p.geofence_radius_m,
        "manager": _user(p.manager),
        "is_active": p.is_active,
        "version": p.version,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def _member_out(m) -> dict:
    return {"user": _user(m.user), "role": m.role, "since": m.created_at}


def project_detail(actor, p: Project) -> dict:
    return {
        **project_out(p),
        "members": [_member_out(m) for m in selectors.list_project_members(p)],
        "editable_fields": sorted(policies.editable_project_fields(actor, p)),
        "can_manage_members": policies.can_manage_members(actor, p),
    }


def supplier_out(s: Supplier) -> dict:
    return {
        "id": s.id,
        "name": s.name,
        "uscc": s.uscc,
        "kind": s.kind,
        "region": s.region,
        "region_label": str(s.get_region_display()),
        "contact_name": s.contact_name,
        "contact_phone": sensitive.masked(s, "contact_phone"),
        "bank_account": sensitive.masked(s, "bank_account"),
        "qualification": s.qualification,
        "is_active": s.is_active,
        "version": s.version,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


# ------------------------------------------------------------------------------------------ customers


@router.get("/customers", response={200: CustomerPage, 422: ProblemSchema}, summary="List customers")
def list_customers(request: HttpRequest, filters: Query[CustomerFilterIn]):
    qs = selectors.list_customers(actor=request.auth, search=filters.q, region=filters.region or "")
    return _page(qs, filters, customer_out)


@router.post("/customers", response={201: CustomerDetailOut, **ERRORS}, summary="Create a customer (administrator)")
def create_customer(request: HttpRequest, payload: CustomerIn):
    data = payload.dict()
    customer = services.create_customer(actor=request.auth, **data)
    return 201, customer_detail(request.auth, customer)


@router.post(
    "/customers/import",
    response={201: ImportOut, **ERRORS},
    summary="Import customers from an .xlsx file (all rows or none)",
    description="Row 1 holds the headers (Chinese or English). A refused file answers 422 with "
    "`errors` items {row, column, message}; nothing is written.",
    throttle=EXPENSIVE,
)
def import_customers(request: HttpRequest, file: File[UploadedFile]):
    result = services.import_customers_xlsx(actor=request.auth, file=file)
    return 201, {"created": result.created, "ids": result.ids}


@router.get(
    "/customers/{customer_id}",
    response={200: CustomerDetailOut, 404: ProblemSchema},
    summary="A customer with its contacts and your projects of it",
)
def get_customer(request: HttpRequest, customer_id: uuid.UUID):
    return customer_detail(request.auth, selectors.access_customer(request.auth, customer_id))


@router.patch("/customers/{customer_id}", response={200: CustomerDetailOut, **ERRORS}, summary="Change a customer")
def update_customer(request: HttpRequest, customer_id: uuid.UUID, payload: CustomerPatchIn):
    data = payload.dict(exclude_unset=True)
    version = data.pop("version", None)
    _no_nulls(data, ("name", "uscc", "region", "grade", "address", "notes", "contacts"))
    if "id_card_number" in data and data["id_card_number"] is None:
        data["id_card_number"] = ""
    customer = services.update_customer(
        actor=request.auth, customer_id=customer_id, changes=data, expected_version=version
    )
    return customer_detail(request.auth, customer)


@router.post(
    "/customers/{customer_id}/reveal",
    response={200: RevealOut, **ERRORS},
    summary="The clear ID card number or a contact's mobile (administrator or finance; audited)",
)
def reveal_customer(request: HttpRequest, response: HttpResponse, customer_id: uuid.UUID, payload: CustomerRevealIn):
    response["Cache-Control"] = "no-store"
    value = services.reveal_customer_value(
        actor=request.auth, customer_id=customer_id, field=payload.field, contact_id=payload.contact_id
    )
    return {"field": payload.field, "value": value}


@router.delete(
    "/customers/{customer_id}",
    response={204: None, **ERRORS},
    summary="Delete a customer no project or order refers to",
)
def delete_customer(request: HttpRequest, customer_id: uuid.UUID):
    services.delete_customer(actor=request.auth, customer_id=customer_id)
    return 204, None


# ------------------------------------------------------------------------------------------ project types


@router.get("/project-types", response=list[ProjectTypeOut], summary="List project types")
def list_project_types(request: HttpRequest):
    return list(selectors.list_project_types(actor=request.auth))


@router.post(
    "/project-types", response={201: ProjectTypeOut, **ERRORS}, summary="Create a project type (administrator)"
)
def create_project_type(request: HttpRequest, payload: ProjectTypeIn):
    return 201, services.create_project_type(actor=request.auth, **payload.dict())


# ------------------------------------------------------------------------------------------ projects


@router.get("/projects", response={200: ProjectPage, 422: ProblemSchema}, summary="List projects in your scope")
def list_projects(request: HttpRequest, filters: Query[ProjectFilterIn]):
    qs = selectors.list_projects(
        actor=request.auth,
        search=filters.q,
        region=filters.region or "",
        customer_id=filters.customer,
        active=filters.active,
    )
    return _page(qs, filters, project_out)


@router.post("/projects", response={201: ProjectDetailOut, **ERRORS}, summary="Create a project (administrator)")
def create_project(request: HttpRequest, payload: ProjectIn):
    data = payload.dict()
    data["customer"] = data.pop("customer_id")
    data["project_type"] = data.pop("project_type_id")
    data["manager"] = data.pop("manager_id")
    project = services.create_project(actor=request.auth, **data)
    return 201, project_detail(request.auth, selectors.access_project(request.auth, project.id))


@router.post(
    "/projects/import",
    response={201: ImportOut, **ERRORS},
    summary="Import projects from an .xlsx file (all rows or none)",
    description="Row 1 holds the headers (Chinese or English). The customer is given by credit code or full "
    "name, the project type by code or name, the manager by username. A refused file answers 422 with "
    "`errors` items {row, column, message}; nothing is written.",
    throttle=EXPENSIVE,
)
def import_projects(request: HttpRequest, file: File[UploadedFile]):
    result = services.import_projects_xlsx(actor=request.auth, file=file)
    return 201, {"created": result.created, "ids": result.ids}


@router.get(
    "/projects/{project_id}", response={200: ProjectDetailOut, 404: ProblemSchema}, summary="A project with members"
)
def get_project(request: HttpRequest, project_id: uuid.UUID):
    return project_detail(request.auth, selectors.access_project(request.auth, project_id))


@router.patch(
    "/projects/{project_id}",
    response={200: ProjectDetailOut, **ERRORS},
    summary="Change a project (administrator: every field; its manager: the site fields)",
)
def update_project(request: HttpRequest, project_id: uuid.UUID, payload: ProjectPatchIn):
    data = payload.dict(exclude_unset=True)
    version = data.pop("version", None)
    for api_name, field in (
        ("customer_id", "customer"),
        ("project_type_id", "project_type"),
        ("manager_id", "manager"),
    ):
        if api_name in data:
            data[field] = data.pop(api_name)
    _no_nulls(data, ("code", "name", "customer", "project_type", "region", "geofence_radius_m", "is_active"))
    for text in ("province", "city", "address"):
        if text in data and data[text] is None:
            data[text] = ""
    project = services.update_project(actor=request.auth, project_id=project_id, changes=data, expected_version=version)
    return project_detail(request.auth, selectors.access_project(request.auth, project.id))


@router.get(
    "/projects/{project_id}/members",
    response={200: list[MemberOut], 404: ProblemSchema},
    summary="Members of a project",
)
def list_members(request: HttpRequest, project_id: uuid.UUID):
    project = selectors.access_project(request.auth, project_id)
    return [_member_out(m) for m in selectors.list_project_members(project)]


@router.post(
    "/projects/{project_id}/members",
    response={201: MemberOut, **ERRORS},
    summary="Add a member or change their project role (administrator or the project's manager)",
)
def add_member(request: HttpRequest, project_id: uuid.UUID, payload: MemberIn):
    membership = services.set_project_member(
        actor=request.auth, project_id=project_id, user_id=payload.user_id, role=payload.role
    )
    return 201, _member_out(membership)


@router.delete(
    "/projects/{project_id}/members/{user_id}",
    response={204: None, **ERRORS},
    summary="Remove a member (administrator or the project's manager)",
)
def remove_member(request: HttpRequest, project_id: uuid.UUID, user_id: uuid.UUID):
    services.remove_project_member(actor=request.auth, project_id=project_id, user_id=user_id)
    return 204, None


# ------------------------------------------------------------------------------------------ suppliers


@router.get("/suppliers", response={200: SupplierPage, 422: ProblemSchema}, summary="List suppliers and subcontractors")
def list_suppliers(request: HttpRequest, filters: Query[SupplierFilterIn]):
    qs = selectors.list_suppliers(
        actor=request.auth, search=filters.q, kind=filters.kind or "", region=filters.region or ""
    )
    return _page(qs, filters, supplier_out)


@router.post("/suppliers", response={201: SupplierOut, **ERRORS}, summary="Create a supplier (administrator)")
def create_supplier(request: HttpRequest, payload: SupplierIn):
    return 201, supplier_out(services.create_supplier(actor=request.auth, **payload.dict()))


@router.get("/suppliers/{supplier_id}", response={200: SupplierOut, 404: ProblemSchema}, summary="A supplier")
def get_supplier(request: HttpRequest, supplier_id: uuid.UUID):
    return supplier_out(selectors.access_supplier(request.auth, supplier_id))


@router.post(
    "/suppliers/{supplier_id}/reveal",
    response={200: RevealOut, **ERRORS},
    summary="The clear contact mobile or bank account number (administrator or finance; audited)",
)
def reveal_supplier(request: HttpRequest, response: HttpResponse, supplier_id: uuid.UUID, payload: SupplierRevealIn):
    response["Cache-Control"] = "no-store"
    value = services.reveal_supplier_value(actor=request.auth, supplier_id=supplier_id, field=payload.field)
    return {"field": payload.field, "value": value}


@router.patch("/suppliers/{supplier_id}", response={200: SupplierOut, **ERRORS}, summary="Change a supplier")
def update_supplier(request: HttpRequest, supplier_id: uuid.UUID, payload: SupplierPatchIn):
    data = payload.dict(exclude_unset=True)
    version = data.pop("version", None)
    _no_nulls(data, ("name", "uscc", "kind", "region", "is_active"))
    for text in ("contact_name", "contact_phone", "bank_account", "qualification"):
        if text in data and data[text] is None:
            data[text] = ""
    supplier = services.update_supplier(
        actor=request.auth, supplier_id=supplier_id, changes=data, expected_version=version
    )
    return supplier_out(supplier)
