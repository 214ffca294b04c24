"""The inbox page: the user's notifications (all or unread), mark one or all read, and open one
(marks it read and goes to the object's page). Only the user's own notifications: another user's
answers 404, as a missing one does."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from eoms.core.errors import DomainError
from eoms.core.ids import valid_uuids

from .. import selectors, services
from ..conf import digest_hour
from ..errors import NotificationNotFound
from ..models import DeliveryState
from .forms import PreferencesForm

__all__ = ["inbox", "open_notification", "mark_read", "mark_all_read", "preferences", "deliveries"]
__all__ += ["deliveries_act"]

PAGE_SIZE = 30


@login_required
@require_GET
def inbox(request):
    unread_only = request.GET.get("show") == "unread"
    qs = selectors.list_notifications(actor=request.user, unread_only=unread_only)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "notifications/inbox.html",
        {"page": page, "unread_only": unread_only, "unread": selectors.unread_count(actor=request.user)},
    )


def _read(request, notification_id):
    try:
        return services.mark_notification_read(actor=request.user, notification_id=notification_id)
    except NotificationNotFound:
        raise Http404(_("No such notification."))


@login_required
@require_POST
def open_notification(request, notification_id):
    """Mark it read and go to its object (its link is a path of this site; anything else stays here)."""
    notification = _read(request, notification_id)
    if notification.url and url_has_allowed_host_and_scheme(notification.url, allowed_hosts=None):
        return redirect(notification.url)
    return redirect("notifications:inbox")


@login_required
@require_POST
def mark_read(request, notification_id):
    _read(request, notification_id)
    return redirect(_back(request))


@login_required
@require_POST
def mark_all_read(request):
    count = services.mark_all_notifications_read(actor=request.user)
    messages.success(
        request,
        ngettext("%(count)d notification marked read.", "%(count)d notifications marked read.", count)
        % {"count": count},
    )
    return redirect(_back(request))


def _back(request) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return "notifications:inbox"


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request):
    """The user's own settings: which kinds reach them by email (the inbox gets everything), and
    quiet hours."""
    current = selectors.get_notification_preferences(actor=request.user)
    form = PreferencesForm(request.POST or None, preferences=current)
    if request.method == "POST" and form.is_valid():
        try:
            services.set_notification_preferences(
                actor=request.user,
                channels=form.channels(),
                quiet_from=form.cleaned_data["quiet_from"],
                quiet_until=form.cleaned_data["quiet_until"],
                email_digest=form.cleaned_data["email_digest"],
            )
        except DomainError as exc:
            for error in exc.errors:
                field = error.get("field", "")
                form.add_error(field if field in form.fields else None, error.get("message", ""))
        else:
            messages.success(request, _("Notification settings saved."))
            return redirect("notifications:preferences")
    form.mark_errors()
    return render(
        request,
        "notifications/preferences.html",
        {
            "form": form,
            "quiet_fields": [form["quiet_from"], form["quiet_until"]],
            "zone": settings.TIME_ZONE,
            "digest_hour": f"{digest_hour():02d}:00",
            "has_email": bool(request.user.email),
        },
        status=422 if form.errors else 200,
    )


@login_required
@require_GET
def deliveries(request):
    """Administrators: deliveries through outside channels that failed for good (the notifications'
    dead letters), discarded ones, and those still on their way; send failed ones again or discard
    them, one or several at once."""
    if not selectors.can_manage_deliveries(request.user):
        raise PermissionDenied
    states = [(value, label) for value, label in DeliveryState.choices if value in selectors.ADMIN_STATES]
    state = request.GET.get("state", DeliveryState.FAILED)
    if state not in selectors.ADMIN_STATES:
        state = DeliveryState.FAILED
    page = Paginator(selectors.list_deliveries(actor=request.user, state=state), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    for delivery in page:
        delivery.shown_address = selectors.shown_address(delivery)
    return render(
        request,
        "notifications/deliveries.html",
        {"page": page, "state": state, "states": states, "failed": selectors.failed_delivery_count()},
    )


@login_required
@require_POST
def deliveries_act(request):
    """Send again (`action=retry`) or discard (`action=discard`) the checked failed deliveries."""
    if not selectors.can_manage_deliveries(request.user):
        raise PermissionDenied
    ids = valid_uuids(request.POST.getlist("ids"))
    action = request.POST.get("action")
    back = f"{reverse('notifications:deliveries')}?state={DeliveryState.FAILED}"
    if action not in ("retry", "discard"):
        messages.error(request, _("Choose whether to send the deliveries again or to discard them."))
        return redirect(back)
    if not ids:
        messages.error(request, _("Tick at least one delivery first."))
        return redirect(back)
    if action == "retry":
        done = services.retry_deliveries(actor=request.user, delivery_ids=ids)
        text = ngettext("%(count)d delivery will be sent again.", "%(count)d deliveries will be sent again.", done)
    else:
        done = services.discard_deliveries(actor=request.user, delivery_ids=ids)
        text = ngettext("%(count)d delivery discarded.", "%(count)d deliveries discarded.", done)
    messages.success(request, text % {"count": done})
    if done < len(ids):
        skipped = len(ids) - done
        messages.warning(
            request,
            ngettext(
                "%(count)d was no longer failed and was left as it is.",
                "%(count)d were no longer failed and were left as they are.",
                skipped,
            )
            % {"count": skipped},
        )
    return redirect(back)
