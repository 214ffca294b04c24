from django.utils.translation import gettext_lazy as _

from eoms.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

__all__ = [
    "DefinitionNotFound",
    "DefinitionInvalid",
    "DefinitionConflict",
    "NoApplicableFlow",
    "InstanceNotFound",
    "TaskNotFound",
    "TaskNotPending",
    "ApprovalConflict",
    "ApprovalPermissionDenied",
    "ApprovalInputInvalid",
]


class DefinitionNotFound(NotFound):
    code = "approval.definition_not_found"
    title = _("Approval flow not found")


class DefinitionInvalid(ValidationFailed):
    code = "approval.definition_invalid"
    title = _("The approval flow has problems")


class DefinitionConflict(Conflict):
    code = "approval.definition_conflict"
    title = _("The approval flow was changed by someone else")


class NoApplicableFlow(Conflict):
    code = "approval.no_flow"
    title = _("No approval flow applies")


class InstanceNotFound(NotFound):
    code = "approval.not_found"
    title = _("Approval not found")


class TaskNotFound(NotFound):
    code = "approval.task_not_found"
    title = _("Approval task not found")


class TaskNotPending(Conflict):
    code = "approval.task_not_pending"
    title = _("This task is no longer waiting for a decision")


class ApprovalConflict(Conflict):
    code = "approval.conflict"
    title = _("This action is not possible now")


class ApprovalPermissionDenied(PermissionDenied):
    code = "approval.permission_denied"


class ApprovalInputInvalid(ValidationFailed):
    code = "approval.invalid"
