"""Who may change master data: used by services, the API and the pages alike.

Customers, project types and suppliers are company reference data that only an administrator
changes. A project may also be changed by its own manager, but only its site fields; its members
are managed by an administrator or the project's manager. The auditor changes nothing, whatever
other role they hold."""

from eoms.accounts.roles import Role
from eoms.accounts.selectors import has_role, is_read_only

__all__ = [
    "PM_EDITABLE_PROJECT_FIELDS",
    "ADMIN_EDITABLE_PROJECT_FIELDS",
    "is_masterdata_admin",
    "can_edit_customer",
    "can_delete_customer",
    "can_import_customers",
    "can_create_project_type",
    "can_create_project",
    "can_import_projects",
    "can_edit_project",
    "editable_project_fields",
    "can_manage_members",
    "can_edit_supplier",
    "can_reveal_sensitive",
]

# The site of a project: what its manager keeps up to date. Code, customer, type, region, manager
# and the active flag are the administrator's.
PM_EDITABLE_PROJECT_FIELDS = frozenset(
    {"name", "province", "city", "address", "latitude", "longitude", "geofence_radius_m"}
)
ADMIN_EDITABLE_PROJECT_FIELDS = PM_EDITABLE_PROJECT_FIELDS | {
    "code",
    "customer",
    "project_type",
    "region",
    "manager",
    "is_active",
}


def is_masterdata_admin(actor) -> bool:
    """An administrator who is not also an auditor. `None` (the system) passes too."""
    if actor is None:
        return True
    return has_role(actor, Role.ADMIN) and not is_read_only(actor)


def can_edit_customer(actor) -> bool:
    return is_masterdata_admin(actor)


def can_delete_customer(actor) -> bool:
    return is_masterdata_admin(actor)


def can_import_customers(actor) -> bool:
    return is_masterdata_admin(actor)


def can_create_project_type(actor) -> bool:
    return is_masterdata_admin(actor)


def can_create_project(actor) -> bool:
    return is_masterdata_admin(actor)


def can_import_projects(actor) -> bool:
    return is_masterdata_admin(actor)


def _is_manager_of(actor, project) -> bool:
    return (
        actor is not None
        and getattr(actor, "pk", None) is not None
        and project.manager_id == actor.pk
        and bool(getattr(actor, "is_active", False))
        and not is_read_only(actor)
    )


def editable_project_fields(actor, project) -> frozenset[str]:
    if is_masterdata_admin(actor):
        return ADMIN_EDITABLE_PROJECT_FIELDS
    if _is_manager_of(actor, project):
        return PM_EDITABLE_PROJECT_FIELDS
    return frozenset()


def can_edit_project(actor, project) -> bool:
    return bool(editable_project_fields(actor, project))


def can_manage_members(actor, project) -> bool:
    """Add or remove members: an administrator or the project's manager (as accounts.services checks)."""
    return is_masterdata_admin(actor) or _is_manager_of(actor, project)


def can_edit_supplier(actor) -> bool:
    return is_masterdata_admin(actor)


def can_reveal_sensitive(actor) -> bool:
    """See an encrypted value (ID card number, bank account, contact mobile) in clear: administrators
    and finance. Everyone else sees it masked; each reveal is audited (services.reveal_*)."""
    return actor is not None and (has_role(actor, Role.ADMIN) or has_role(actor, Role.FINANCE))
