"""Reads of master data. Projects are scoped like orders: members see theirs, admin and auditor all;
customers, project types and suppliers are company-wide reference data every signed-in user reads."""

import uuid

from django.db.models import QuerySet

from eoms.accounts.selectors import project_ids_in_scope, roles_of

from .errors import CustomerNotFound, ProjectNotFound
from .models import Customer, Project, ProjectType, Supplier

__all__ = [
    "list_projects",
    "access_project",
    "list_customers",
    "access_customer",
    "list_project_types",
    "list_suppliers",
]


def list_projects(*, actor, search: str = "") -> QuerySet[Project]:
    qs = Project.objects.select_related("customer", "project_type", "manager")
    scope = project_ids_in_scope(actor)
    if scope is not None:
        qs = qs.filter(pk__in=scope)
    if search:
        qs = qs.filter(name__icontains=search) | qs.filter(code__icontains=search)
    return qs.order_by("code")


def access_project(actor, project_id) -> Project:
    try:
        return list_projects(actor=actor).get(pk=uuid.UUID(str(project_id)))
    except (Project.DoesNotExist, ValueError):
        raise ProjectNotFound("No such project.")


def list_customers(*, actor, search: str = "") -> QuerySet[Customer]:
    qs = Customer.objects.all() if roles_of(actor) else Customer.objects.none()
    if search:
        qs = qs.filter(name__icontains=search) | qs.filter(uscc__icontains=search)
    return qs.order_by("name")


def access_customer(actor, customer_id) -> Customer:
    try:
        return list_customers(actor=actor).get(pk=uuid.UUID(str(customer_id)))
    except (Customer.DoesNotExist, ValueError):
        raise CustomerNotFound("No such customer.")


def list_project_types(*, actor) -> QuerySet[ProjectType]:
    return ProjectType.objects.all() if roles_of(actor) else ProjectType.objects.none()


def list_suppliers(*, actor, search: str = "", kind: str = "") -> QuerySet[Supplier]:
    qs = Supplier.objects.all() if roles_of(actor) else Supplier.objects.none()
    if kind:
        qs = qs.filter(kind=kind)
    if search:
        qs = qs.filter(name__icontains=search) | qs.filter(uscc__icontains=search)
    return qs.order_by("name")
