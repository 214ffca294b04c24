"""The shared kernel's tables: the base model, the audit chain, the outbox and counters."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .ids import uuid7

__all__ = ["BaseModel", "AuditEntry", "AuditChainHead", "OutboxMessage", "ProcessedMessage", "Counter", "DeadLetter"]


class BaseModel(models.Model):
    """Every business row: an unguessable time-ordered id, timestamps, and a version for
    compare-and-set updates (a write that finds another version answers 409)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    version = models.PositiveIntegerField(_("version"), default=1)

    class Meta:
        abstract = True


class AuditEntry(models.Model):
    """One append-only entry of the tamper-evident audit chain.

    core.audit.record writes it unsealed (`seq` null, `prev_hash` and `hash` empty) inside the
    caller's transaction, without a lock; core.audit.seal later gives it, under the lock of
    AuditChainHead, the next `seq` (gapless from 1 over sealed entries, in sealing order) and `hash`,
    an HMAC over this entry's content and the previous entry's hash, so an edited, deleted, reordered
    or inserted row breaks the chain at its sequence number (see core.audit.verify_chain). `id` is
    the order of writing; `seq` the order of the chain.
    """

    seq = models.BigIntegerField(_("sequence"), unique=True, null=True, blank=True)
    at = models.DateTimeField(_("time"), db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        verbose_name=_("actor"),
    )
    actor_repr = models.CharField(_("actor"), max_length=150, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    action = models.CharField(_("action"), max_length=80, db_index=True)
    object_type = models.CharField(_("object type"), max_length=80, db_index=True)
    object_id = models.CharField(_("object id"), max_length=64, db_index=True)
    object_repr = models.CharField(_("object"), max_length=200, blank=True)
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")

    def __str__(self):
        number = f"#{self.seq}" if self.seq is not None else f"(id {self.pk}, not sealed yet)"
        return f"{number} {self.action} {self.object_repr}"


class AuditChainHead(models.Model):
    """The single row holding the chain's last sealed sequence number and hash. Sealers lock it
    (core.audit.seal), which serialises sealing and keeps `seq` gapless on every backend; appending
    an entry does not touch it."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)


class OutboxMessage(models.Model):
    """A domain event waiting to be delivered, written in the same transaction as the change it
    reports. The relay delivers messages of one aggregate in `id` order and marks them sent only when
    every handler has processed them; failures are retried with backoff."""

    id = models.BigAutoField(primary_key=True)
    message_id = models.UUIDField(default=uuid7, unique=True, editable=False)
    event_type = models.CharField(max_length=120, db_index=True)
    event_version = models.PositiveSmallIntegerField(default=1)
    aggregate_type = models.CharField(max_length=80)
    aggregate_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    actor_id = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["sent_at", "id"], name="outbox_unsent_idx"),
            models.Index(fields=["aggregate_type", "aggregate_id", "id"], name="outbox_aggregate_idx"),
        ]
        verbose_name = _("outbox message")

    def __str__(self):
        return f"{self.event_type} {self.aggregate_type}:{self.aggregate_id}"


class ProcessedMessage(models.Model):
    """Which handler has processed which message: makes every handler idempotent under redelivery."""

    message_id = models.UUIDField()
    handler = models.CharField(max_length=200)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message_id", "handler"], name="processed_once")]


class Counter(models.Model):
    """Named counters for business numbers (ORD-2026-000123). Incremented with a single UPDATE,
    which takes the row lock on every backend, so concurrent creators never share a number."""

    name = models.CharField(max_length=60, primary_key=True)
    value = models.BigIntegerField(default=0)


class DeadLetter(models.Model):
    """A broker message the consumers gave up on: its handlers failed EOMS_BROKER_MAX_ATTEMPTS times
    (or it could not be read). Written by `eoms worker` from the dead-letter queue, one row per
    message; an administrator replays it (the outbox sends it again and only the handlers that have
    not processed it run) or discards it, each audited (eoms.core.dead_letters). A replayed message
    that dies again opens its row again and counts one more death."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        REPLAYED = "replayed", _("Replayed")
        DISCARDED = "discarded", _("Discarded")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    message_id = models.UUIDField(_("message id"), unique=True)
    event_type = models.CharField(_("event type"), max_length=120)
    aggregate_type = models.CharField(_("object type"), max_length=80, blank=True)
    aggregate_id = models.CharField(_("object id"), max_length=64, blank=True)
    body = models.JSONField(_("message"), default=dict)
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    deaths = models.PositiveIntegerField(_("deaths"), default=1)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    dead_at = models.DateTimeField(_("dead since"))
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("resolved by"),
    )

    class Meta:
        ordering = ["-dead_at"]
        verbose_name = _("dead letter")
        verbose_name_plural = _("dead letters")

    def __str__(self):
        return f"{self.event_type} {self.message_id}"
