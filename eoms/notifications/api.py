"""Notifications API: the caller's own inbox (list, unread count, mark read) and settings; for
administrators, the deliveries through outside channels that failed for good (the notifications'
dead letters), to send again or discard.

Who may call: every signed-in user, for their own notifications only. Another user's notification
answers 404, as a missing one does; there is no way to read or mark anyone else's. The deliveries
endpoints: administrators only (403 for everyone else). Errors are problem+json.
"""

import uuid
from datetime import datetime, time
from typing import Literal

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from eoms.core.api import ProblemSchema

from . import selectors, services
from .models import Delivery, DeliveryState, Notification, NotificationKind, NotificationPreferences
from .services import OUTSIDE_CHANNELS

router = Router(tags=["notifications"])

WHO_OWN = "Who: any signed-in user, for their own notifications only (another user's answers 404)."
WHO_SETTINGS = "Who: any signed-in user, for their own notification settings only."
WHO_ADMIN = "Who: administrators only (403 for every other signed-in user)."


class NotificationOut(Schema):
    id: uuid.UUID
    kind: NotificationKind
    kind_label: str
    title: str = Field(description="In the recipient's language, as rendered when it was made")
    body: str
    url: str = Field(description="Path of the object's page on this site ('' when there is none)")
    created_at: datetime
    read_at: datetime | None


class NotificationPage(Schema):
    count: int
    unread: int
    page: int
    page_size: int
    results: list[NotificationOut]


class NotificationFilterIn(Schema):
    unread: bool = Field(False, description="Only unread notifications")
    page: int = Field(1, ge=1, le=100000)
    page_size: int = Field(50, ge=1, le=200)


class UnreadCountOut(Schema):
    unread: int


class MarkedOut(Schema):
    marked: int


def notification_out(n: Notification) -> dict:
    return {
        "id": n.id,
        "kind": n.kind,
        "kind_label": str(n.get_kind_display()),
        "title": n.title,
        "body": n.body,
        "url": n.url,
        "created_at": n.created_at,
        "read_at": n.read_at,
    }


@router.get(
    "",
    response={200: NotificationPage, 422: ProblemSchema},
    summary="My notifications, newest first",
    description=WHO_OWN,
)
def list_notifications(request: HttpRequest, filters: Query[NotificationFilterIn]):
    qs = selectors.list_notifications(actor=request.auth, unread_only=filters.unread)
    start = (filters.page - 1) * filters.page_size
    return {
        "count": qs.count(),
        "unread": selectors.unread_count(actor=request.auth),
        "page": filters.page,
        "page_size": filters.page_size,
        "results": [notification_out(n) for n in qs[start : start + filters.page_size]],
    }


@router.get(
    "/unread-count",
    response={200: UnreadCountOut},
    summary="How many of my notifications are unread",
    description=WHO_OWN,
)
def get_unread_count(request: HttpRequest):
    return {"unread": selectors.unread_count(actor=request.auth)}


@router.post(
    "/read-all",
    response={200: MarkedOut},
    summary="Mark all my notifications read",
    description=WHO_OWN,
)
def mark_all_read(request: HttpRequest):
    return {"marked": services.mark_all_notifications_read(actor=request.auth)}


@router.post(
    "/{notification_id}/read",
    response={200: NotificationOut, 404: ProblemSchema},
    summary="Mark one of my notifications read (a notification already read keeps its first read time)",
    description=WHO_OWN,
)
def mark_read(request: HttpRequest, notification_id: uuid.UUID):
    return notification_out(services.mark_notification_read(actor=request.auth, notification_id=notification_id))


class PreferencesOut(Schema):
    channels: dict[str, dict[str, bool]] = Field(
        description="Per kind, whether each outside channel is on (the in-app inbox is always on)"
    )
    quiet_from: time | None = Field(description="Start of the quiet hours in the company's time zone, or none")
    quiet_until: time | None
    email_digest: bool = Field(description="Email comes as one digest a day instead of one message per notification")
    version: int


class PreferencesIn(Schema):
    channels: dict[str, dict[str, bool]] = Field(
        default_factory=dict,
        description="Per kind (" + ", ".join(NotificationKind.values) + "), "
        "{channel: on}; kinds and channels left out keep their current setting",
    )
    quiet_from: time | None = Field(None, description="Give both, or neither for no quiet hours")
    quiet_until: time | None = None
    email_digest: bool | None = Field(
        None,
        description="One email a day (at the site's digest hour) with the day's notifications instead of one "
        "email each; left out keeps the current choice",
    )


def preferences_out(p: NotificationPreferences) -> dict:
    return {
        "channels": {kind: {c: p.wants(kind, c) for c in OUTSIDE_CHANNELS} for kind in NotificationKind.values},
        "quiet_from": p.quiet_from,
        "quiet_until": p.quiet_until,
        "email_digest": p.email_digest,
        "version": p.version,
    }


@router.get(
    "/preferences",
    response={200: PreferencesOut},
    summary="My notification settings",
    description=WHO_SETTINGS,
)
def get_preferences(request: HttpRequest):
    return preferences_out(selectors.get_notification_preferences(actor=request.auth))


@router.put(
    "/preferences",
    response={200: PreferencesOut, 422: ProblemSchema},
    summary="Change my notification settings (audited)",
    description=WHO_SETTINGS + " An unknown kind or channel, or only one end of the quiet hours, answers 422.",
)
def put_preferences(request: HttpRequest, payload: PreferencesIn):
    return preferences_out(
        services.set_notification_preferences(
            actor=request.auth,
            channels=payload.channels,
            quiet_from=payload.quiet_from,
            quiet_until=payload.quiet_until,
            email_digest=payload.email_digest,
        )
    )


class NotificationDeliveryOut(Schema):
    id: uuid.UUID
    notification_id: uuid.UUID
    kind: NotificationKind
    title: str
    recipient: str = Field(description="The recipient's username")
    channel: str
    address: str = Field(description="Where it went; a mobile number is masked (138****1234)")
    state: DeliveryState
    attempts: int
    last_error: str
    created_at: datetime
    due_at: datetime
    sent_at: datetime | None


class NotificationDeliveryPage(Schema):
    count: int
    page: int
    page_size: int
    results: list[NotificationDeliveryOut]


class DeliveryFilterIn(Schema):
    state: Literal["failed", "discarded", "pending"] = Field(
        "failed", description="failed (gave up after the retries), discarded, or pending (still on its way)"
    )
    page: int = Field(1, ge=1, le=100000)
    page_size: int = Field(50, ge=1, le=200)


class DeliveryIdsIn(Schema):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=500, description="Deliveries in the failed state")


class DeliveriesDoneOut(Schema):
    done: int = Field(description="How many of them were failed and are now sent again / discarded")
    skipped: int = Field(description="How many were not (no longer) failed, or are not deliveries, and were left")


def delivery_out(d: Delivery) -> dict:
    return {
        "id": d.id,
        "notification_id": d.notification_id,
        "kind": d.notification.kind,
        "title": d.notification.title,
        "recipient": d.recipient.username,
        "channel": d.channel,
        "address": selectors.shown_address(d),
        "state": d.state,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "due_at": d.due_at,
        "sent_at": d.sent_at,
    }


@router.get(
    "/deliveries",
    response={200: NotificationDeliveryPage, 403: ProblemSchema, 422: ProblemSchema},
    summary="Deliveries through outside channels by state, the most recent first (failed ones by default)",
    description=WHO_ADMIN + " A delivery is failed when its channel kept failing through every retry "
    "(EOMS_NOTIFY_MAX_ATTEMPTS).",
)
def list_deliveries(request: HttpRequest, filters: Query[DeliveryFilterIn]):
    qs = selectors.list_deliveries(actor=request.auth, state=filters.state)
    start = (filters.page - 1) * filters.page_size
    return {
        "count": qs.count(),
        "page": filters.page,
        "page_size": filters.page_size,
        "results": [delivery_out(d) for d in qs[start : start + filters.page_size]],
    }


@router.post(
    "/deliveries/retry",
    response={200: DeliveriesDoneOut, 403: ProblemSchema, 422: ProblemSchema},
    summary="Send failed deliveries again (after fixing the mail server or robot, say); audited each",
    description=WHO_ADMIN,
)
def retry_deliveries(request: HttpRequest, payload: DeliveryIdsIn):
    ids = set(payload.ids)
    done = services.retry_deliveries(actor=request.auth, delivery_ids=ids)
    return {"done": done, "skipped": len(ids) - done}


@router.post(
    "/deliveries/discard",
    response={200: DeliveriesDoneOut, 403: ProblemSchema, 422: ProblemSchema},
    summary="Give failed deliveries up for good; audited each",
    description=WHO_ADMIN,
)
def discard_deliveries(request: HttpRequest, payload: DeliveryIdsIn):
    ids = set(payload.ids)
    done = services.discard_deliveries(actor=request.auth, delivery_ids=ids)
    return {"done": done, "skipped": len(ids) - done}
