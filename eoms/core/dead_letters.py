"""Dead letters: broker messages whose handlers kept failing. `eoms worker` records them from the
dead-letter queue; administrators list them and replay or discard each one, audited.

Replaying goes through the outbox: the message's outbox row is marked unsent again (or written again
from the dead letter when the row is gone), in the same transaction as the audit entry, so the relay
publishes it when the broker can take it, in order behind nothing of its aggregate that is older;
handlers that had processed it skip it (ProcessedMessage), the ones that failed run again.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from eoms.accounts.roles import Role
from eoms.accounts.selectors import has_role

from . import audit
from .errors import Conflict, NotFound, PermissionDenied
from .ids import valid_uuids
from .models import DeadLetter, OutboxMessage

__all__ = ["can_manage_dead_letters", "list_dead_letters", "access_dead_letter", "record_dead_letter"]
__all__ += ["replay_dead_letter", "discard_dead_letter", "open_dead_letters", "register_failure_source"]
__all__ += ["failure_sources"]

OBJECT_TYPE = "core.dead_letter"


@dataclass(frozen=True)
class FailureSource:
    """Another place where work gave up after its retries (a context's own dead letters, such as
    notification deliveries whose channel kept failing): the dead-letter page links to it with its
    count, so an administrator finds every failure from one page without core knowing the context."""

    key: str
    label: str  # translated when shown
    url_name: str
    count: Callable[[], int]


_FAILURE_SOURCES: dict[str, FailureSource] = {}


def register_failure_source(*, key: str, label, url_name: str, count: Callable[[], int]) -> None:
    """Called from a context's AppConfig.ready(); registering a key again replaces it."""
    _FAILURE_SOURCES[key] = FailureSource(key=key, label=label, url_name=url_name, count=count)


def failure_sources() -> list[FailureSource]:
    return sorted(_FAILURE_SOURCES.values(), key=lambda source: source.key)


def can_manage_dead_letters(actor) -> bool:
    return has_role(actor, Role.ADMIN)


def _require(actor) -> None:
    if not can_manage_dead_letters(actor):
        raise PermissionDenied(_("Only administrators may see and handle dead letters."))


def list_dead_letters(*, actor, state: str | None = DeadLetter.State.OPEN) -> QuerySet[DeadLetter]:
    """Dead letters, the most recent death first; all states when `state` is None."""
    _require(actor)
    letters = DeadLetter.objects.select_related("resolved_by").order_by("-dead_at", "-id")
    return letters if state is None else letters.filter(state=state)


def open_dead_letters() -> int:
    return DeadLetter.objects.filter(state=DeadLetter.State.OPEN).count()


def access_dead_letter(actor, dead_letter_id, *, for_update: bool = False) -> DeadLetter:
    _require(actor)
    if not valid_uuids([dead_letter_id]):
        raise NotFound(_("No such dead letter."))
    letters = DeadLetter.objects.select_for_update() if for_update else DeadLetter.objects
    letter = letters.filter(pk=dead_letter_id).first()
    if letter is None:
        raise NotFound(_("No such dead letter."))
    return letter


def record_dead_letter(
    *,
    message_id,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str,
    body: dict,
    error: str,
    attempts: int,
    dead_at,
) -> DeadLetter:
    """Write (or reopen) the dead letter of one message. A copy the broker delivers again (its death
    time is not later than the one recorded) changes nothing; a message that dies again after a
    replay opens its row again with one more death."""
    fields = {
        "event_type": event_type[:120],
        "aggregate_type": aggregate_type[:80],
        "aggregate_id": aggregate_id[:64],
        "body": body,
        "error": error[:10000],
        "attempts": max(0, attempts),
        "dead_at": dead_at,
    }
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().filter(message_id=message_id).first()
        if letter is None:
            try:
                with transaction.atomic():
                    return DeadLetter.objects.create(message_id=message_id, **fields)
            except IntegrityError:  # another worker recorded it at the same moment
                return DeadLetter.objects.get(message_id=message_id)
        if dead_at <= letter.dead_at:
            return letter
        for name, value in fields.items():
            setattr(letter, name, value)
        letter.deaths += 1
        letter.state = DeadLetter.State.OPEN
        letter.resolved_at = None
        letter.resolved_by = None
        letter.save()
        return letter


def _resolve(letter: DeadLetter, *, actor, state: str, action: str, extra: dict) -> DeadLetter:
    before = letter.state
    letter.state = state
    letter.resolved_at = timezone.now()
    letter.resolved_by = actor
    letter.save(update_fields=["state", "resolved_at", "resolved_by"])
    audit.record(
        actor=actor,
        action=action,
        object_type=OBJECT_TYPE,
        object_id=letter.pk,
        object_repr=f"{letter.event_type} {letter.message_id}",
        changes={"state": [before, state], "message_id": str(letter.message_id), "error": letter.error[:500], **extra},
    )
    return letter


def _require_open(letter: DeadLetter) -> None:
    if letter.state != DeadLetter.State.OPEN:
        raise Conflict(
            _("This dead letter was already handled (%(state)s); reload the page.")
            % {"state": letter.get_state_display()}
        )


@transaction.atomic
def replay_dead_letter(*, actor, dead_letter_id) -> DeadLetter:
    """Send the message again through the outbox. Conflict when the dead letter is no longer open,
    or when it is not an EOMS event (unreadable: discard it instead)."""
    letter = access_dead_letter(actor, dead_letter_id, for_update=True)
    _require_open(letter)
    message = OutboxMessage.objects.select_for_update().filter(message_id=letter.message_id).first()
    if message is not None:
        OutboxMessage.objects.filter(pk=message.pk).update(
            sent_at=None, attempts=0, next_attempt_at=None, last_error=""
        )
    else:
        body = letter.body or {}
        if not body.get("event_type") or body.get("message_id") != str(letter.message_id):
            raise Conflict(_("This message is not an EOMS event and cannot be replayed; discard it."))
        created_at = parse_datetime(body["created_at"]) if body.get("created_at") else None
        message = OutboxMessage.objects.create(
            message_id=letter.message_id,
            event_type=body["event_type"],
            event_version=int(body.get("event_version") or 1),
            aggregate_type=str(body.get("aggregate_type", "")),
            aggregate_id=str(body.get("aggregate_id", "")),
            payload=body.get("payload") or {},
            actor_id=str(body.get("actor_id", "")),
            request_id=str(body.get("request_id", "")),
        )
        if isinstance(created_at, datetime):
            OutboxMessage.objects.filter(pk=message.pk).update(created_at=created_at)
    return _resolve(
        letter,
        actor=actor,
        state=DeadLetter.State.REPLAYED,
        action="core.dead_letter_replayed",
        extra={"outbox_message": message.pk},
    )


@transaction.atomic
def discard_dead_letter(*, actor, dead_letter_id) -> DeadLetter:
    """Give the message up for good (its handlers will not run for it). Conflict when it is no
    longer open."""
    letter = access_dead_letter(actor, dead_letter_id, for_update=True)
    _require_open(letter)
    return _resolve(
        letter, actor=actor, state=DeadLetter.State.DISCARDED, action="core.dead_letter_discarded", extra={}
    )
