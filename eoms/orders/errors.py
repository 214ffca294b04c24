from django.utils.translation import gettext_lazy as _

from eoms.core.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from eoms.core.uploads import AttachmentRejected as _AttachmentRejected

__all__ = [
    "OrderNotFound",
    "InvalidTransition",
    "StaleOrder",
    "GuardFailed",
    "OrderPermissionDenied",
    "OrderValidationFailed",
    "AttachmentRejected",
    "InvalidCursor",
]


class OrderNotFound(NotFound):
    code = "order.not_found"
    title = _("Order not found")


class InvalidTransition(Conflict):
    code = "order.invalid_transition"
    title = _("This action is not possible in the order's current state")


class StaleOrder(Conflict):
    code = "order.stale"
    title = _("The order was changed by someone else")


class GuardFailed(Conflict):
    code = "order.guard_failed"
    title = _("A condition of this action is not met")


class InvalidCursor(DomainError):
    code = "order.invalid_cursor"
    title = _("Invalid page cursor")


class OrderPermissionDenied(PermissionDenied):
    code = "order.permission_denied"


class OrderValidationFailed(ValidationFailed):
    code = "order.validation_failed"


# Raised by eoms.core.uploads for any context's files; the same class under the orders name.
AttachmentRejected = _AttachmentRejected
