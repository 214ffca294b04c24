"""Who may do what in approvals: used by services, the API and the pages alike."""

from eoms.accounts.roles import Role
from eoms.accounts.selectors import has_role, is_read_only

from .models import ApprovalInstance, ApprovalTask, InstanceState, TaskState

__all__ = [
    "can_manage_definitions",
    "can_view_definitions",
    "can_decide_task",
    "can_withdraw",
    "can_nudge",
    "can_comment",
    "can_migrate",
]


def can_manage_definitions(actor) -> bool:
    return has_role(actor, Role.ADMIN) and not is_read_only(actor)


def can_view_definitions(actor) -> bool:
    """Admins build flows; auditors read them; approvers and PMs may read them to see the rules."""
    return has_role(actor, Role.ADMIN, Role.AUDITOR, Role.APPROVER, Role.PROJECT_MANAGER, Role.FINANCE)


def can_decide_task(actor, task: ApprovalTask) -> bool:
    return (
        task.state == TaskState.PENDING
        and task.assignee_id == getattr(actor, "pk", None)
        and task.instance.state == InstanceState.RUNNING
        and not is_read_only(actor)
    )


def can_withdraw(actor, instance: ApprovalInstance) -> bool:
    return (
        instance.state == InstanceState.RUNNING
        and not instance.decided
        and instance.initiator_id == getattr(actor, "pk", None)
        and not is_read_only(actor)
    )


def can_nudge(actor, instance: ApprovalInstance) -> bool:
    return (
        instance.state == InstanceState.RUNNING
        and (instance.initiator_id == getattr(actor, "pk", None) or has_role(actor, Role.ADMIN))
        and not is_read_only(actor)
    )


def can_comment(actor, instance: ApprovalInstance) -> bool:
    return bool(getattr(actor, "is_authenticated", False)) and not is_read_only(actor)


def can_migrate(actor) -> bool:
    return can_manage_definitions(actor)
