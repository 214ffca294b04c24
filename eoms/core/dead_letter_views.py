"""The dead-letter page: administrators see the messages consumers gave up on and replay or discard
each one (eoms.core.dead_letters, audited). Everyone else gets 403."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from . import dead_letters
from .errors import DomainError, NotFound
from .errors import PermissionDenied as DomainPermissionDenied
from .models import DeadLetter, OutboxMessage

__all__ = ["dead_letter_list", "dead_letter_replay", "dead_letter_discard"]

PAGE_SIZE = 50
STATE_FILTERS = ("open", "replayed", "discarded", "all")


def _require_admin(user) -> None:
    if not dead_letters.can_manage_dead_letters(user):
        raise PermissionDenied


@login_required
@require_GET
def dead_letter_list(request):
    _require_admin(request.user)
    state = request.GET.get("state", "open")
    if state not in STATE_FILTERS:
        state = "open"
    letters = dead_letters.list_dead_letters(actor=request.user, state=None if state == "all" else state)
    page = Paginator(letters, PAGE_SIZE).get_page(request.GET.get("page"))
    unsent = OutboxMessage.objects.filter(sent_at__isnull=True).count()
    return render(
        request,
        "core/dead_letters.html",
        {
            "page": page,
            "state": state,
            "states": [(value, label) for value, label in DeadLetter.State.choices] + [("all", _("All"))],
            "open_count": dead_letters.open_dead_letters(),
            "unsent": unsent,
            "other_failures": [
                {"key": source.key, "label": source.label, "url": reverse(source.url_name), "count": source.count()}
                for source in dead_letters.failure_sources()
            ],
        },
    )


def _act(request, dead_letter_id, service, done: str):
    _require_admin(request.user)
    try:
        letter = service(actor=request.user, dead_letter_id=dead_letter_id)
    except NotFound:
        raise Http404
    except DomainPermissionDenied:
        raise PermissionDenied
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, done % {"event": letter.event_type, "id": letter.message_id})
    return redirect(f"{reverse('dead_letters')}?state=open")


@login_required
@require_POST
def dead_letter_replay(request, dead_letter_id):
    return _act(
        request,
        dead_letter_id,
        dead_letters.replay_dead_letter,
        _("Message %(event)s %(id)s queued again; it is delivered when the relay next runs."),
    )


@login_required
@require_POST
def dead_letter_discard(request, dead_letter_id):
    return _act(request, dead_letter_id, dead_letters.discard_dead_letter, _("Message %(event)s %(id)s discarded."))
