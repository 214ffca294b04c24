"""Reads of webhooks, for administrators only (PermissionDenied for anyone else)."""

import importlib

from django.apps import apps
from django.db.models import Prefetch, QuerySet

from eoms.core.events import DomainEvent

from .errors import DeliveryNotFound, SubscriptionNotFound
from .models import Attempt, Delivery, Subscription
from .policies import require_webhook_admin

__all__ = ["known_event_types", "list_subscriptions", "access_subscription", "list_deliveries", "access_delivery"]


def known_event_types() -> list[str]:
    """Every event type EOMS publishes: the DomainEvent subclasses of each installed context's
    `events` module (found by name, so this context imports none of them)."""
    for config in apps.get_app_configs():
        if config.name.startswith("eoms."):
            try:
                importlib.import_module(f"{config.name}.events")
            except ModuleNotFoundError as exc:
                if exc.name != f"{config.name}.events":
                    raise
    found = set()
    pending = list(DomainEvent.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.event_type and ".tests." not in cls.__module__ and not cls.__module__.startswith("tests"):
            found.add(cls.event_type)
    return sorted(found)


def list_subscriptions(*, actor) -> QuerySet[Subscription]:
    require_webhook_admin(actor)
    return Subscription.objects.select_related("owner").order_by("created_at", "id")


def access_subscription(actor, subscription_id, *, for_update: bool = False) -> Subscription:
    require_webhook_admin(actor)
    qs = Subscription.objects.select_related("owner")
    if for_update:
        qs = qs.select_for_update()
    found = qs.filter(pk=subscription_id).first()
    if found is None:
        raise SubscriptionNotFound()
    return found


def list_deliveries(*, actor, subscription: Subscription) -> QuerySet[Delivery]:
    """Newest first, each with its attempts (newest first) prefetched."""
    require_webhook_admin(actor)
    return (
        Delivery.objects.filter(subscription=subscription)
        .order_by("-created_at", "-id")
        .prefetch_related(Prefetch("attempt_log", queryset=Attempt.objects.order_by("-number")))
    )


def access_delivery(actor, subscription: Subscription, delivery_id, *, for_update: bool = False) -> Delivery:
    require_webhook_admin(actor)
    qs = Delivery.objects.filter(subscription=subscription, pk=delivery_id)
    if for_update:
        qs = qs.select_for_update()
    found = qs.first()
    if found is None:
        raise DeliveryNotFound()
    return found
