"""What a user is told, and through which channel it went.

A Notification is one item of a user's in-app inbox, made from one domain event (its outbox
`message_id`); the title and body are rendered once, in the recipient's language, when it is made.
A Delivery is the same notification sent through another channel (email today): written in the
same transaction as the notification and sent after it commits, so a rolled-back handler sends
nothing and a redelivered event finds its rows already there. The unique constraints on
(message_id, recipient) and (message_id, recipient, channel) are what make a redelivered event
notify nobody twice.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from eoms.core.ids import uuid7

__all__ = [
    "NotificationKind",
    "Channel",
    "OFF_BY_DEFAULT",
    "Notification",
    "DeliveryState",
    "Delivery",
    "NotificationPreferences",
    "Digest",
]


class NotificationKind(models.TextChoices):
    TASK_ASSIGNED = "task_assigned", _("Approval task assigned to me")
    TASK_REMINDER = "task_reminder", _("Reminder of an approval task waiting for me")
    TASK_DECIDED = "task_decided", _("A decision on my approval")
    APPROVAL_COMPLETED = "approval_completed", _("My approval finished")
    CC_RECEIVED = "cc_received", _("Approval copied to me")
    ORDER_TRANSITIONED = "order_transitioned", _("Order changed stage")
    STAGE_DEADLINE_NEAR = "stage_deadline_near", _("An order's stage deadline is near")
    STAGE_OVERDUE = "stage_overdue", _("An order is past its stage deadline")
    APPROVAL_WITHDRAWN = "approval_withdrawn", _("An approval waiting for me was withdrawn")
    APPROVAL_TIMED_OUT = "approval_timed_out", _("A step of my approval timed out")
    WEBHOOK_PAUSED = "webhook_paused", _("My webhook was paused")


class Channel(models.TextChoices):
    IN_APP = "in_app", _("In-app inbox")
    EMAIL = "email", _("Email")
    DINGTALK = "dingtalk", _("DingTalk")
    WECOM = "wecom", _("WeCom")
    SMS = "sms", _("SMS")


# What a user gets through a channel before choosing: everything, except text messages (they cost
# money and wake people up), which only an approval task waiting for the user sends (new or reminded).
OFF_BY_DEFAULT = {
    Channel.SMS: frozenset(
        {
            NotificationKind.TASK_DECIDED,
            NotificationKind.APPROVAL_COMPLETED,
            NotificationKind.CC_RECEIVED,
            NotificationKind.ORDER_TRANSITIONED,
            NotificationKind.STAGE_DEADLINE_NEAR,
            NotificationKind.STAGE_OVERDUE,
            NotificationKind.APPROVAL_WITHDRAWN,
            NotificationKind.APPROVAL_TIMED_OUT,
            NotificationKind.WEBHOOK_PAUSED,
        }
    )
}


class Notification(models.Model):
    """One item of a user's inbox. Read by its recipient only (selectors scope every read to the
    actor). `url` is a path of this site (the object's page), never an outside address."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("recipient")
    )
    kind = models.CharField(_("kind"), max_length=30, choices=NotificationKind.choices)
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("message"), blank=True)
    url = models.CharField(_("link"), max_length=300, blank=True)
    message_id = models.UUIDField(_("event"), db_index=True)
    event_type = models.CharField(max_length=120)
    created_at = models.DateTimeField(_("created at"), db_index=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["message_id", "recipient"], name="notification_once_per_event"),
        ]
        indexes = [models.Index(fields=["recipient", "read_at"], name="notification_unread_idx")]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")

    def __str__(self):
        return self.title


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Waiting")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    DIGEST = "digest", _("Waiting for the daily digest")
    DISCARDED = "discarded", _("Discarded")


class Delivery(models.Model):
    """A notification through one outside channel. PENDING rows are sent when due (`due_at`: now,
    the end of the recipient's quiet hours, or a retry's backoff); a sender claims a row by moving
    it PENDING→SENDING (compare-and-set), so two senders never send one row. A failed attempt goes
    back to PENDING with a later `due_at`, up to NOTIFY_MAX_ATTEMPTS, then FAILED: the
    notifications' dead letters, which administrators send again or discard (DISCARDED) on
    /notifications/deliveries/, linked from the dead-letter page. `address` is the destination when the row was made.
    An email to a user who chose the daily digest is a DIGEST row instead: never sent on its own,
    it goes out in that day's Digest (`digest`), then SENT with it."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.UUIDField(_("event"))
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("recipient")
    )
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    address = models.CharField(_("address"), max_length=254)
    state = models.CharField(
        _("state"), max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING, db_index=True
    )
    due_at = models.DateTimeField(_("due at"), db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    last_error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"))
    digest = models.ForeignKey(
        "Digest", null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries", verbose_name=_("digest")
    )

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["message_id", "recipient", "channel"], name="delivery_once_per_channel"),
        ]
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")

    def __str__(self):
        return f"{self.channel} → {self.address} ({self.state})"


class NotificationPreferences(models.Model):
    """A user's choices: per kind, which outside channels (`channels`: {kind: {channel: bool}}; a
    kind or channel not named there has its default, OFF_BY_DEFAULT; the in-app inbox is always
    on), and quiet hours in the company's time zone (TIME_ZONE) during which nothing is sent
    outside: what falls in them is sent when they end. `quiet_from` == `quiet_until`, or either
    empty, means none; a window may span midnight (22:00–07:00). `email_digest`: email comes once
    a day as one digest instead of one message per notification (the inbox and the other channels
    are unaffected). Written only by services.set_notification_preferences (audited)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notification_preferences",
        verbose_name=_("user"),
    )
    channels = models.JSONField(_("channels"), default=dict, blank=True)
    quiet_from = models.TimeField(_("quiet from"), null=True, blank=True)
    quiet_until = models.TimeField(_("quiet until"), null=True, blank=True)
    email_digest = models.BooleanField(_("daily email digest"), default=False)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("notification settings")
        verbose_name_plural = _("notification settings")

    def __str__(self):
        return str(self.user_id)

    def wants(self, kind: str, channel: str) -> bool:
        if channel == Channel.IN_APP:
            return True
        default = kind not in OFF_BY_DEFAULT.get(channel, ())
        return bool(self.channels.get(kind, {}).get(channel, default))

    @property
    def has_quiet_hours(self) -> bool:
        return self.quiet_from is not None and self.quiet_until is not None and self.quiet_from != self.quiet_until

    def quiet_end_after(self, moment):
        """The end of the quiet hours `moment` (aware) falls in, or None when it falls in none."""
        if not self.has_quiet_hours:
            return None
        local = timezone.localtime(moment)
        now = local.time()
        start, end = self.quiet_from, self.quiet_until
        inside = (start <= now < end) if start < end else (now >= start or now < end)
        if not inside:
            return None
        day = local.date() if now < end else local.date() + timedelta(days=1)
        return timezone.make_aware(datetime.combine(day, end), local.tzinfo)


class Digest(models.Model):
    """One user's daily email digest: the email notifications they chose to receive once a day,
    made before that day's digest hour (EOMS_NOTIFY_DIGEST_HOUR, company time zone) and not in an
    earlier digest. Unique per (recipient, day): however often the job runs, one email a day.
    Claimed for sending by a compare-and-set PENDING→SENDING; retried like a delivery (`due_at`)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("recipient")
    )
    day = models.DateField(_("day"))
    address = models.CharField(_("address"), max_length=254)
    state = models.CharField(
        _("state"), max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING, db_index=True
    )
    due_at = models.DateTimeField(_("due at"), db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    last_error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["recipient", "day"], name="digest_once_per_day")]
        verbose_name = _("daily digest")
        verbose_name_plural = _("daily digests")

    def __str__(self):
        return f"{self.recipient_id} {self.day} ({self.state})"
