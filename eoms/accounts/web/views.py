"""Sign-in, sign-out and the profile page with personal API tokens."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from eoms.core.errors import DomainError

from .. import selectors, services, throttling, twofactor


class SignInForm(AuthenticationForm):
    """Django's sign-in form behind the throttle (eoms.accounts.throttling): an attempt takes its slot
    before the password is checked, and one beyond the limits is refused without checking it, with the
    same message as a wrong password plus "later" — whether or not the account exists."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": gettext_lazy("Your username and password didn't match. Please try again later."),
    }
    refused: throttling.Attempt | None = None
    second_step: str | None = None

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if not username or not password:
            return self.cleaned_data  # the missing field is the error
        attempt = throttling.begin(username=username, ip=getattr(self.request, "client_ip", None))
        if attempt.refused:
            self.refused = attempt
            # authenticate() was not called, so nobody else says it failed: the failure metric hears it here.
            user_login_failed.send(sender=__name__, credentials={"username": username}, request=self.request)
            _failed(username, attempt.refused, attempt.started)
            raise ValidationError(self.error_messages["throttled"], code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError:
            _failed(username, "password", throttling.failed(attempt))
            raise
        # With a second factor to come, the account's earlier failures keep counting until it is given.
        self.second_step = twofactor.stage_after_password(self.user_cache)
        throttling.succeeded(attempt, second_factor_pending=self.second_step is not None)
        return cleaned


def _failed(username: str, reason: str, started: dict[str, int]) -> None:
    services.record_throttled_failure(username=username, reason=reason, started=started)


class SignInView(auth_views.LoginView):
    """The password step. A user who owes a second factor (an authenticator app, or a role that requires
    one) is not signed in here: the session remembers the pending step (eoms.accounts.twofactor)."""

    form_class = SignInForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        if form.second_step is None:
            return super().form_valid(form)
        step = twofactor.begin_pending(
            self.request, form.get_user(), stage=form.second_step, next_url=self.get_redirect_url()
        )
        return redirect(step.url)

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.refused is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.refused.retry_after)
        return response


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
            "two_factor": selectors.two_factor_status(request.user),
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
