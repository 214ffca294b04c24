from django.utils.translation import gettext_lazy as _

from eoms.core.errors import NotFound, ValidationFailed

__all__ = ["SubscriptionNotFound", "DeliveryNotFound", "SubscriptionInvalid", "TargetRefused"]


class SubscriptionNotFound(NotFound):
    code = "webhook.not_found"
    title = _("Webhook not found")


class DeliveryNotFound(NotFound):
    code = "webhook.delivery_not_found"
    title = _("Webhook delivery not found")


class SubscriptionInvalid(ValidationFailed):
    code = "webhook.invalid"
    title = _("The webhook is not valid")


class TargetRefused(ValidationFailed):
    """The target URL is not one EOMS may call: not https, unresolvable, or an internal address."""

    code = "webhook.target_refused"
    title = _("This webhook target is not allowed")
