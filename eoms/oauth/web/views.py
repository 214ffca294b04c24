"""OAuth2 client pages: the list, registration (the secret is shown once, on the page that answers it),
a client's page with its active tokens, a new secret and deletion. Administrators only: others get 403."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from eoms.core.errors import DomainError, NotFound

from .. import selectors, services
from ..scopes import SCOPES, scope_list
from .forms import ClientForm

__all__ = [
    "client_list",
    "client_create",
    "client_detail",
    "client_rotate_secret",
    "client_delete",
    "authorized_list",
    "authorized_revoke",
]


def _admin(request) -> None:
    if not selectors.can_manage_clients(request.user):
        raise PermissionDenied


def _client(request, client_id):
    try:
        return selectors.access_client(request.user, client_id)
    except NotFound:
        raise Http404(_("No such OAuth2 client."))


def _done(request, action, message: str, to: str):
    """Run a service that ends something, then say so and go to `to`; a client not found is a 404."""
    try:
        action()
    except NotFound:
        raise Http404(_("No such OAuth2 client."))
    messages.success(request, message)
    return redirect(to)


@login_required
@require_GET
def client_list(request):
    _admin(request)
    return render(request, "oauth/list.html", {"clients": selectors.list_clients(actor=request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def client_create(request):
    _admin(request)
    form = ClientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            policy, secret = services.register_client(
                actor=request.user,
                name=data["name"],
                grant_type=data["grant_type"],
                client_type=data["client_type"],
                scopes=data["scopes"],
                redirect_uris=data["redirect_uris"],
                owner=data["owner"],
            )
        except DomainError as exc:
            for error in exc.errors or [{"message": exc.detail}]:
                field = error.get("field", "")
                form.add_error(field if field in form.fields else None, error.get("message", ""))
        else:
            # Rendered, not redirected: the secret must not sit in a URL or a session.
            return render(request, "oauth/created.html", {"policy": policy, "secret": secret})
    return render(request, "oauth/form.html", {"form": form}, status=422 if form.errors else 200)


@login_required
@require_GET
def client_detail(request, client_id):
    _admin(request)
    policy = _client(request, client_id)
    scopes = [(s, SCOPES[s]) for s in scope_list(policy.scopes)]
    counts = selectors.active_token_counts(policy.application)
    return render(request, "oauth/detail.html", {"policy": policy, "scopes": scopes, "counts": counts})


@login_required
@require_POST
def client_rotate_secret(request, client_id):
    _admin(request)
    try:
        policy, secret = services.rotate_client_secret(actor=request.user, policy_id=client_id)
    except NotFound:
        raise Http404(_("No such OAuth2 client."))
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("oauth:detail", client_id=client_id)
    return render(request, "oauth/created.html", {"policy": policy, "secret": secret})


@login_required
@require_POST
def client_delete(request, client_id):
    _admin(request)
    return _done(
        request,
        lambda: services.delete_client(actor=request.user, policy_id=client_id),
        _("OAuth2 client deleted; its tokens no longer work."),
        "oauth:list",
    )


@login_required
@require_GET
def authorized_list(request):
    """The apps the signed-in user has authorized, with what each may do; any user, their own only."""
    entries = [
        {**e, "labels": [SCOPES[s] for s in e["scopes"]]} for e in selectors.list_authorized_clients(actor=request.user)
    ]
    return render(request, "oauth/authorized.html", {"entries": entries})


@login_required
@require_POST
def authorized_revoke(request, client_id):
    return _done(
        request,
        lambda: services.revoke_authorization(actor=request.user, policy_id=client_id),
        _("Access withdrawn: the app can no longer act as you."),
        "oauth:authorized",
    )
