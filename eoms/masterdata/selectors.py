"""Reads of master data. Projects are scoped like orders: members see theirs, admin and auditor all;
customers, project types and suppliers are company-wide reference data every signed-in user reads."""

import uuid

from django.db.models import Case, Count, Q, QuerySet, Value, When
from django.utils.translation import gettext as _

from eoms.accounts.roles import ProjectRole
from eoms.accounts.selectors import project_ids_in_scope, roles_of

from . import policies, sensitive
from .errors import CustomerNotFound, ProjectNotFound, ProjectTypeNotFound, SupplierNotFound
from .models import Customer, CustomerContact, Project, ProjectType, Supplier

__all__ = [
    "list_projects",
    "access_project",
    "list_customers",
    "access_customer",
    "list_project_types",
    "access_project_type",
    "list_suppliers",
    "access_supplier",
    "list_project_members",
    "list_customer_projects",
    "region_choices",
    "customer_grade_choices",
    "project_type_choices",
]


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def list_projects(
    *, actor, search: str = "", region: str = "", customer_id=None, active: bool | None = None
) -> QuerySet[Project]:
    qs = Project.objects.select_related("customer", "project_type", "manager")
    scope = project_ids_in_scope(actor)
    if scope is not None:
        qs = qs.filter(pk__in=scope)
    if search:
        search = search.strip()[:100]
        qs = qs.filter(Q(name__icontains=search) | Q(code__icontains=search) | Q(city__icontains=search))
    if region:
        qs = qs.filter(region=region)
    if customer_id:
        qs = qs.filter(customer_id=customer_id)
    if active is not None:
        qs = qs.filter(is_active=active)
    return qs.order_by("code")


def access_project(actor, project_id) -> Project:
    try:
        return list_projects(actor=actor).get(pk=_uuid(project_id))
    except (Project.DoesNotExist, ValueError, TypeError, AttributeError):
        raise ProjectNotFound(_("No such project."))


def _exact_sensitive(actor, model, fields, search: str) -> Q:
    """Rows whose encrypted `fields` equal `search` after normalisation, by their blind index. Only for
    callers who may reveal these values: to others an exact match would confirm a number they cannot see."""
    if not policies.can_reveal_sensitive(actor):
        return Q(pk__in=[])
    match = Q(pk__in=[])
    for field in fields:
        index = sensitive.search_index(model, field, search)
        if index:
            match |= Q(**{f"{field}_bidx": index})
    return match


def list_customers(*, actor, search: str = "", region: str = "") -> QuerySet[Customer]:
    """Search matches names and credit codes by substring, and (for administrators and finance) an ID
    card number or a contact's mobile exactly."""
    qs = Customer.objects.all() if roles_of(actor) else Customer.objects.none()
    if search:
        search = search.strip()[:100]
        contacts = CustomerContact.objects.filter(_exact_sensitive(actor, CustomerContact, ("phone",), search))
        qs = qs.filter(
            Q(name__icontains=search)
            | Q(uscc__icontains=search)
            | _exact_sensitive(actor, Customer, ("id_card_number",), search)
            | Q(pk__in=contacts.values("customer_id"))
        )
    if region:
        qs = qs.filter(region=region)
    return qs.order_by("name", "id")


def access_customer(actor, customer_id) -> Customer:
    try:
        return list_customers(actor=actor).get(pk=_uuid(customer_id))
    except (Customer.DoesNotExist, ValueError, TypeError, AttributeError):
        raise CustomerNotFound(_("No such customer."))


def list_project_types(*, actor) -> QuerySet[ProjectType]:
    qs = ProjectType.objects.all() if roles_of(actor) else ProjectType.objects.none()
    return qs.annotate(project_count=Count("projects")).order_by("code")


def access_project_type(actor, project_type_id) -> ProjectType:
    try:
        return list_project_types(actor=actor).get(pk=_uuid(project_type_id))
    except (ProjectType.DoesNotExist, ValueError, TypeError, AttributeError):
        raise ProjectTypeNotFound(_("No such project type."))


def list_suppliers(*, actor, search: str = "", kind: str = "", region: str = "") -> QuerySet[Supplier]:
    """Search matches names, credit codes and qualifications by substring, and (for administrators and
    finance) the contact mobile or the bank account number exactly."""
    qs = Supplier.objects.all() if roles_of(actor) else Supplier.objects.none()
    if kind:
        qs = qs.filter(kind=kind)
    if region:
        qs = qs.filter(region=region)
    if search:
        search = search.strip()[:100]
        qs = qs.filter(
            Q(name__icontains=search)
            | Q(uscc__icontains=search)
            | Q(qualification__icontains=search)
            | _exact_sensitive(actor, Supplier, ("contact_phone", "bank_account"), search)
        )
    return qs.order_by("name", "id")


def access_supplier(actor, supplier_id) -> Supplier:
    try:
        return list_suppliers(actor=actor).get(pk=_uuid(supplier_id))
    except (Supplier.DoesNotExist, ValueError, TypeError, AttributeError):
        raise SupplierNotFound(_("No such supplier."))


def list_project_members(project: Project) -> QuerySet:
    """The memberships of a project the caller has already accessed, managers first."""
    rank = Case(
        When(role=ProjectRole.PM, then=Value(0)), When(role=ProjectRole.ENGINEER, then=Value(1)), default=Value(2)
    )
    return (
        project.memberships.select_related("user")
        .filter(user__is_active=True)
        .annotate(rank=rank)
        .order_by("rank", "user__username")
    )


def list_customer_projects(*, actor, customer: Customer) -> QuerySet[Project]:
    """The customer's projects that `actor` may see."""
    return list_projects(actor=actor, customer_id=customer.pk)


def region_choices() -> list[tuple[str, str]]:
    from .models import Region

    return list(Region.choices)


def customer_grade_choices() -> list[tuple[str, str]]:
    from .models import CustomerGrade

    return list(CustomerGrade.choices)


def project_type_choices() -> list[tuple[str, str]]:
    """(code, name) of every project type, for conditions on an order's project type."""
    return [(pt.code, str(pt)) for pt in ProjectType.objects.order_by("code")]
