"""Webhook pages: the list, a form to create one (its secret is shown once, on the page that answers
the creation), and a webhook's page with its delivery log, redelivery, pause, resume and delete.
Administrators only: everyone else gets 403."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from eoms.core.errors import DomainError, NotFound

from .. import selectors, services
from ..policies import can_manage_webhooks
from .forms import PauseForm, SubscriptionForm

__all__ = [
    "webhook_list",
    "webhook_create",
    "webhook_detail",
    "webhook_pause",
    "webhook_resume",
    "webhook_delete",
    "delivery_redeliver",
]

PAGE_SIZE = 25


def _admin(request) -> None:
    if not can_manage_webhooks(request.user):
        raise PermissionDenied


def _subscription(request, webhook_id):
    try:
        return selectors.access_subscription(request.user, webhook_id)
    except NotFound:
        raise Http404(_("No such webhook."))


@login_required
@require_GET
def webhook_list(request):
    _admin(request)
    return render(request, "webhooks/list.html", {"subscriptions": selectors.list_subscriptions(actor=request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def webhook_create(request):
    _admin(request)
    form = SubscriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            subscription, secret = services.create_subscription(
                actor=request.user,
                target_url=form.cleaned_data["target_url"],
                event_types=form.cleaned_data["event_types"],
                description=form.cleaned_data["description"],
            )
        except DomainError as exc:
            for error in exc.errors or [{"message": exc.detail}]:
                field = error.get("field", "")
                form.add_error(field if field in form.fields else None, error.get("message", ""))
        else:
            # Rendered, not redirected: the secret must not sit in a URL or a session.
            return render(request, "webhooks/created.html", {"subscription": subscription, "secret": secret})
    return render(request, "webhooks/form.html", {"form": form}, status=422 if form.errors else 200)


@login_required
@require_GET
def webhook_detail(request, webhook_id):
    _admin(request)
    subscription = _subscription(request, webhook_id)
    deliveries = selectors.list_deliveries(actor=request.user, subscription=subscription)
    page = Paginator(deliveries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request, "webhooks/detail.html", {"subscription": subscription, "page": page, "pause_form": PauseForm()}
    )


def _act(request, webhook_id, action, done: str):
    _admin(request)
    try:
        action()
    except NotFound:
        raise Http404(_("No such webhook."))
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, done)
    return redirect("webhooks:detail", webhook_id=webhook_id)


@login_required
@require_POST
def webhook_pause(request, webhook_id):
    form = PauseForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    return _act(
        request,
        webhook_id,
        lambda: services.pause_subscription(actor=request.user, subscription_id=webhook_id, reason=reason),
        _("Webhook paused."),
    )


@login_required
@require_POST
def webhook_resume(request, webhook_id):
    return _act(
        request,
        webhook_id,
        lambda: services.resume_subscription(actor=request.user, subscription_id=webhook_id),
        _("Webhook resumed."),
    )


@login_required
@require_POST
def webhook_delete(request, webhook_id):
    _admin(request)
    try:
        services.delete_subscription(actor=request.user, subscription_id=webhook_id)
    except NotFound:
        raise Http404(_("No such webhook."))
    messages.success(request, _("Webhook deleted."))
    return redirect("webhooks:list")


@login_required
@require_POST
def delivery_redeliver(request, webhook_id, delivery_id):
    return _act(
        request,
        webhook_id,
        lambda: services.redeliver(actor=request.user, subscription_id=webhook_id, delivery_id=delivery_id),
        _("Delivery sent again; its new attempt is in the log."),
    )
