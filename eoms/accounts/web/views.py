"""Sign-in, sign-out and the profile page with personal API tokens."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from eoms.core.errors import DomainError

from .. import selectors, services


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    new_secret = None
    if request.method == "POST":
        try:
            days = int(request.POST.get("days") or 90)
        except ValueError:
            days = -1
        try:
            token, new_secret = services.issue_api_token(
                actor=request.user, name=request.POST.get("name", ""), days=days
            )
            messages.success(request, _("Token created. Copy it now: it is shown only once."))
        except DomainError as exc:
            messages.error(request, "; ".join(e["message"] for e in exc.errors) or exc.detail)
    return render(
        request,
        "accounts/profile.html",
        {
            "tokens": selectors.list_api_tokens(actor=request.user),
            "roles": sorted(selectors.roles_of(request.user)),
            "new_secret": new_secret,
        },
    )


@login_required
@require_POST
def revoke_token(request, token_id):
    try:
        services.revoke_api_token(actor=request.user, token_id=token_id)
        messages.success(request, _("Token revoked."))
    except DomainError as exc:
        messages.error(request, exc.detail)
    return redirect("accounts:profile")
