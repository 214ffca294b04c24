"""Webhook subscriptions and what was sent to them.

A Subscription sends the events it names to an outside URL, each request signed with its secret.
A Delivery is one event for one subscription (unique per (message_id, subscription), so a
redelivered event is sent once); its Attempts are the HTTP requests made for it, with their outcome.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from eoms.core.ids import uuid7

__all__ = ["SubscriptionState", "Subscription", "DeliveryState", "Delivery", "Attempt"]


class SubscriptionState(models.TextChoices):
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")


class Subscription(models.Model):
    """Where to send which events. `event_types` is a list of known event types or ["*"] for all.

    `secret` signs every request (HMAC-SHA256). It is made by the server, shown once in the answer to
    its creation, and never returned again (nothing reads it but the signer). It is stored as it is:
    it cannot be hashed since we sign with it, and EOMS has no field encryption yet (the database
    and its backups must be protected as the secret's keepers).

    `consecutive_failures` counts deliveries that exhausted their attempts in a row; a delivered one
    resets it. At WEBHOOKS_PAUSE_AFTER the subscription is paused (`paused_reason` says why)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("owner")
    )
    description = models.CharField(_("description"), max_length=200, blank=True)
    target_url = models.URLField(_("target URL"), max_length=500)
    event_types = models.JSONField(_("event types"), default=list)
    secret = models.CharField(max_length=100, editable=False)
    state = models.CharField(
        _("state"), max_length=10, choices=SubscriptionState.choices, default=SubscriptionState.ACTIVE
    )
    paused_reason = models.CharField(_("reason"), max_length=300, blank=True)
    consecutive_failures = models.PositiveIntegerField(_("failures in a row"), default=0)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")

    def __str__(self):
        return self.description or self.target_url

    def wants(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Waiting")
    SENDING = "sending", _("Sending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


class Delivery(models.Model):
    """One event for one subscription. `body` is the exact JSON sent (the same on every attempt; the
    timestamp and signature are made per attempt). PENDING rows are sent when `due_at` has passed; a
    sender claims one by moving it PENDING→SENDING (compare-and-set), so two senders never send one
    row at once. A failed attempt goes back to PENDING after a backoff, up to WEBHOOKS_MAX_ATTEMPTS
    attempts, then FAILED."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.UUIDField(_("event"))
    event_type = models.CharField(_("event type"), max_length=120)
    body = models.TextField()
    state = models.CharField(
        _("state"), max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # Set by a manual redelivery: one more attempt, not a new series of retries.
    redelivery = models.BooleanField(default=False)
    due_at = models.DateTimeField(_("due at"), db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    last_status_code = models.PositiveIntegerField(_("response code"), null=True, blank=True)
    last_error = models.CharField(_("error"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["message_id", "subscription"], name="webhook_delivery_once"),
        ]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")

    def __str__(self):
        return f"{self.event_type} → {self.subscription_id} ({self.state})"


class Attempt(models.Model):
    """One HTTP request of a delivery: its number (1, 2, … across retries and manual redeliveries),
    the response code (None when no response came), the time it took and the error (truncated)."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField(_("attempt"))
    manual = models.BooleanField(_("manual redelivery"), default=False)
    succeeded = models.BooleanField(_("succeeded"), default=False)
    status_code = models.PositiveIntegerField(_("response code"), null=True, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), default=0)
    error = models.CharField(_("error"), max_length=500, blank=True)
    started_at = models.DateTimeField(_("started at"))

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")

    def __str__(self):
        return f"#{self.number} {self.status_code or '-'}"
