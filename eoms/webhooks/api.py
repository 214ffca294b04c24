"""Webhooks API: subscriptions, their delivery log, redelivery.

Who may call: administrators only (403 for every other signed-in user, 401 without a session or
token). The secret of a webhook is in the answer to its creation and nowhere else. Errors are
problem+json; a target EOMS may not call answers 422 (webhook.target_refused).
"""

import uuid
from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from eoms.core.api import ProblemSchema

from . import selectors, services
from .models import Attempt, Delivery, DeliveryState, Subscription, SubscriptionState
from .policies import require_webhook_admin

router = Router(tags=["webhooks"])

WHO = "Who: administrators only."
ERRORS = {403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 422: ProblemSchema}


class SubscriptionOut(Schema):
    id: uuid.UUID
    description: str
    target_url: str
    event_types: list[str] = Field(description='Event types sent, or ["*"] for all')
    state: SubscriptionState
    paused_reason: str
    consecutive_failures: int = Field(description="Deliveries in a row that failed after every attempt")
    owner: str = Field(description="User name of the administrator who made it")
    version: int
    created_at: datetime
    updated_at: datetime


class CreatedOut(SubscriptionOut):
    secret: str = Field(description="Signing secret: shown this once, never again")


class SubscriptionIn(Schema):
    target_url: str = Field(max_length=500, description="https URL that resolves to a public address")
    event_types: list[str] = Field(description='Known event types (GET /webhooks/event-types), or ["*"]')
    description: str = Field("", max_length=200)


class SubscriptionPatch(Schema):
    target_url: str | None = Field(None, max_length=500)
    event_types: list[str] | None = None
    description: str | None = Field(None, max_length=200)


class PauseIn(Schema):
    reason: str = Field("", max_length=300)


class AttemptOut(Schema):
    number: int
    manual: bool = Field(description="Made by a manual redelivery")
    succeeded: bool
    status_code: int | None
    latency_ms: int
    error: str
    started_at: datetime


class DeliveryOut(Schema):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    state: DeliveryState
    attempts: int
    last_status_code: int | None
    last_error: str
    due_at: datetime
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptOut]


class DeliveryPage(Schema):
    count: int
    page: int
    page_size: int
    results: list[DeliveryOut]


class EventTypesOut(Schema):
    event_types: list[str]


def subscription_out(s: Subscription) -> dict:
    return {
        "id": s.id,
        "description": s.description,
        "target_url": s.target_url,
        "event_types": s.event_types,
        "state": s.state,
        "paused_reason": s.paused_reason,
        "consecutive_failures": s.consecutive_failures,
        "owner": s.owner.username,
        "version": s.version,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def attempt_out(a: Attempt) -> dict:
    return {
        "number": a.number,
        "manual": a.manual,
        "succeeded": a.succeeded,
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "error": a.error,
        "started_at": a.started_at,
    }


def delivery_out(d: Delivery) -> dict:
    return {
        "id": d.id,
        "event_id": d.message_id,
        "event_type": d.event_type,
        "state": d.state,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "due_at": d.due_at,
        "delivered_at": d.delivered_at,
        "created_at": d.created_at,
        "attempt_log": [attempt_out(a) for a in d.attempt_log.all()],
    }


@router.get("", response={200: list[SubscriptionOut], **ERRORS}, summary="Webhooks", description=WHO)
def list_webhooks(request: HttpRequest):
    return [subscription_out(s) for s in selectors.list_subscriptions(actor=request.auth)]


@router.get(
    "/event-types",
    response={200: EventTypesOut, **ERRORS},
    summary="The event types a webhook may subscribe to",
    description=WHO,
)
def event_types(request: HttpRequest):
    require_webhook_admin(request.auth)
    return {"event_types": selectors.known_event_types()}


@router.post(
    "",
    response={201: CreatedOut, **ERRORS},
    summary="Create a webhook (audited); the answer holds its secret, shown this once",
    description=WHO + " A target that is not https or resolves to an internal address answers 422.",
)
def create_webhook(request: HttpRequest, payload: SubscriptionIn):
    subscription, secret = services.create_subscription(
        actor=request.auth,
        target_url=payload.target_url,
        event_types=payload.event_types,
        description=payload.description,
    )
    return 201, {**subscription_out(subscription), "secret": secret}


@router.get("/{webhook_id}", response={200: SubscriptionOut, **ERRORS}, summary="One webhook", description=WHO)
def get_webhook(request: HttpRequest, webhook_id: uuid.UUID):
    return subscription_out(selectors.access_subscription(request.auth, webhook_id))


@router.patch(
    "/{webhook_id}",
    response={200: SubscriptionOut, **ERRORS},
    summary="Change a webhook's target, event types or description (audited)",
    description=WHO,
)
def update_webhook(request: HttpRequest, webhook_id: uuid.UUID, payload: SubscriptionPatch):
    return subscription_out(
        services.update_subscription(
            actor=request.auth,
            subscription_id=webhook_id,
            target_url=payload.target_url,
            event_types=payload.event_types,
            description=payload.description,
        )
    )


@router.delete(
    "/{webhook_id}",
    response={204: None, **ERRORS},
    summary="Delete a webhook and its delivery log (audited)",
    description=WHO,
)
def delete_webhook(request: HttpRequest, webhook_id: uuid.UUID):
    services.delete_subscription(actor=request.auth, subscription_id=webhook_id)
    return 204, None


@router.post(
    "/{webhook_id}/pause",
    response={200: SubscriptionOut, **ERRORS},
    summary="Pause a webhook (audited); its deliveries wait until it is resumed",
    description=WHO,
)
def pause_webhook(request: HttpRequest, webhook_id: uuid.UUID, payload: PauseIn | None = None):
    reason = payload.reason if payload is not None else ""
    return subscription_out(services.pause_subscription(actor=request.auth, subscription_id=webhook_id, reason=reason))


@router.post(
    "/{webhook_id}/resume",
    response={200: SubscriptionOut, **ERRORS},
    summary="Resume a paused webhook (audited); its failure count starts afresh",
    description=WHO,
)
def resume_webhook(request: HttpRequest, webhook_id: uuid.UUID):
    return subscription_out(services.resume_subscription(actor=request.auth, subscription_id=webhook_id))


@router.get(
    "/{webhook_id}/deliveries",
    response={200: DeliveryPage, **ERRORS},
    summary="A webhook's delivery log, newest first, with every attempt",
    description=WHO,
)
def list_webhook_deliveries(request: HttpRequest, webhook_id: uuid.UUID, page: int = 1, page_size: int = 50):
    page = max(page, 1)
    page_size = min(max(page_size, 1), 200)
    subscription = selectors.access_subscription(request.auth, webhook_id)
    qs = selectors.list_deliveries(actor=request.auth, subscription=subscription)
    start = (page - 1) * page_size
    return {
        "count": qs.count(),
        "page": page,
        "page_size": page_size,
        "results": [delivery_out(d) for d in qs[start : start + page_size]],
    }


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response={202: DeliveryOut, **ERRORS},
    summary="Send a delivery again, now, as a new attempt (audited)",
    description=WHO + " A delivery being sent at that moment answers 409.",
)
def redeliver(request: HttpRequest, webhook_id: uuid.UUID, delivery_id: uuid.UUID):
    delivery = services.redeliver(actor=request.auth, subscription_id=webhook_id, delivery_id=delivery_id)
    return 202, delivery_out(delivery)
