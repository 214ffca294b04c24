"""Who may do what to an order: used by services, the API and the pages alike."""

from eoms.accounts.roles import Role
from eoms.accounts.selectors import has_role, is_read_only, project_ids_in_scope, roles_of

from .state import EDITABLE_FIELDS, Transition, transitions_from

__all__ = [
    "can_view_order",
    "can_create_order",
    "can_update_order",
    "can_take_transition",
    "available_transitions",
    "can_upload_attachment",
    "editable_fields",
]


def can_view_order(actor, order) -> bool:
    scope = project_ids_in_scope(actor)
    return scope is None or order.project_id in scope


def _can_change_project(actor, project_id) -> bool:
    if is_read_only(actor):
        return False
    scope = project_ids_in_scope(actor)
    return scope is None or project_id in scope


def can_create_order(actor, project_id) -> bool:
    return has_role(actor, Role.PROJECT_MANAGER, Role.ADMIN) and _can_change_project(actor, project_id)


def editable_fields(actor, order) -> frozenset[str]:
    if not (has_role(actor, Role.PROJECT_MANAGER, Role.ADMIN) and _can_change_project(actor, order.project_id)):
        return frozenset()
    return EDITABLE_FIELDS.get(order.state, frozenset())


def can_update_order(actor, order) -> bool:
    return bool(editable_fields(actor, order))


def can_take_transition(actor, order, transition: Transition) -> bool:
    if transition.system:
        return False
    if order.state not in transition.sources or not _can_change_project(actor, order.project_id):
        return False
    return bool(roles_of(actor) & transition.allowed_roles(order.state))


def available_transitions(actor, order) -> list[Transition]:
    """The transitions whose buttons this actor sees on this order."""
    return [t for t in transitions_from(order.state) if can_take_transition(actor, order, t)]


def can_upload_attachment(actor, order) -> bool:
    """Anyone who may move the order on from its stage, or edit it, may attach files to it."""
    if not _can_change_project(actor, order.project_id):
        return False
    return (
        bool(available_transitions(actor, order))
        or can_update_order(actor, order)
        or has_role(actor, Role.FIELD_ENGINEER)
    )
