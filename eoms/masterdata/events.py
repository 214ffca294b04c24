"""Events of the master data context. Creates carry the identifying fields consumers need; updates
name the fields that changed (the before and after values are in the audit entry)."""

import uuid
from dataclasses import dataclass

from eoms.core.events import DomainEvent

__all__ = [
    "CustomerCreated",
    "CustomerUpdated",
    "CustomerDeleted",
    "ProjectTypeCreated",
    "ProjectCreated",
    "ProjectUpdated",
    "SupplierCreated",
    "SupplierUpdated",
]


@dataclass(frozen=True, kw_only=True)
class _CustomerEvent(DomainEvent):
    aggregate_type = "masterdata.customer"
    aggregate_field = "customer_id"
    customer_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class CustomerCreated(_CustomerEvent):
    event_type = "masterdata.customer_created"
    name: str
    uscc: str
    region: str


@dataclass(frozen=True, kw_only=True)
class CustomerUpdated(_CustomerEvent):
    event_type = "masterdata.customer_updated"
    fields: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class CustomerDeleted(_CustomerEvent):
    event_type = "masterdata.customer_deleted"
    uscc: str


@dataclass(frozen=True, kw_only=True)
class ProjectTypeCreated(DomainEvent):
    event_type = "masterdata.project_type_created"
    aggregate_type = "masterdata.projecttype"
    aggregate_field = "project_type_id"
    project_type_id: uuid.UUID
    code: str


@dataclass(frozen=True, kw_only=True)
class _ProjectEvent(DomainEvent):
    aggregate_type = "masterdata.project"
    aggregate_field = "project_id"
    project_id: uuid.UUID
    code: str


@dataclass(frozen=True, kw_only=True)
class ProjectCreated(_ProjectEvent):
    event_type = "masterdata.project_created"
    customer_id: uuid.UUID
    region: str
    manager_id: uuid.UUID | None


@dataclass(frozen=True, kw_only=True)
class ProjectUpdated(_ProjectEvent):
    event_type = "masterdata.project_updated"
    fields: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class _SupplierEvent(DomainEvent):
    aggregate_type = "masterdata.supplier"
    aggregate_field = "supplier_id"
    supplier_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class SupplierCreated(_SupplierEvent):
    event_type = "masterdata.supplier_created"
    name: str
    uscc: str
    kind: str


@dataclass(frozen=True, kw_only=True)
class SupplierUpdated(_SupplierEvent):
    event_type = "masterdata.supplier_updated"
    fields: tuple[str, ...]
