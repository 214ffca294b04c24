"""The second step of signing in, setting up an authenticator app, recovery codes, and the changes that
ask for the password and a fresh code again (password, email, turning two-factor off)."""

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from eoms.core.errors import DomainError

from .. import selectors, services, totp, twofactor
from ..errors import TooManyAttempts

ISSUER = "EOMS"


def _errors(exc: DomainError) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for error in exc.errors:
        found.setdefault(error.get("field") or "__all__", []).append(str(error["message"]))
    return found or {"__all__": [exc.detail]}


def _throttled(response, exc: TooManyAttempts):
    response.status_code = 429
    response["Retry-After"] = str(exc.retry_after)
    return response


@require_http_methods(["GET", "POST"])
def verify(request):
    """Second step of signing in: a code of the user's authenticator app, or a recovery code."""
    step = twofactor.pending(request)
    if step is None or step.stage != "verify":
        return redirect("dashboard" if request.user.is_authenticated else "login")
    user = selectors.get_active_user(step.user_id)
    if user is None:
        twofactor.clear_pending(request)
        return redirect("login")
    context = {"errors": {}}
    if request.method == "POST":
        try:
            method = services.check_second_factor(user=user, code=request.POST.get("code", ""), purpose="sign_in")
        except TooManyAttempts as exc:
            twofactor.clear_pending(request)  # the password is asked again once the lock ends
            return _throttled(render(request, "accounts/two_factor_verify.html", {"locked": True}), exc)
        except DomainError as exc:
            context["errors"] = _errors(exc)
            return render(request, "accounts/two_factor_verify.html", context, status=400)
        next_url = twofactor.complete_sign_in(request, user, step, selectors.confirmed_device(user))
        if method == "recovery":
            left = selectors.two_factor_status(user)["recovery_codes_left"]
            messages.warning(
                request,
                _("You signed in with a recovery code; %(left)d are left. Make new ones on your profile.")
                % {"left": left},
            )
        return redirect(next_url)
    return render(request, "accounts/two_factor_verify.html", context)


def _enrolling_user(request):
    """Who is setting up an app: the signed-in user, or the one whose role requires an app and who gave
    the password (pending "enrol"); with the pending step."""
    if request.user.is_authenticated:
        return request.user, None
    step = twofactor.pending(request)
    if step is not None and step.stage == "enrol":
        return selectors.get_active_user(step.user_id), step
    return None, None


@require_http_methods(["GET", "POST"])
def enrol(request):
    """Set up an authenticator app: begin (with a fresh code when one is set up already), scan the QR
    code or type the key, confirm with a first code, then see the recovery codes once."""
    user, step = _enrolling_user(request)
    if user is None:
        return redirect("login")
    status = selectors.two_factor_status(user)
    context = {"status": status, "forced": step is not None, "errors": {}}
    action = request.POST.get("action") if request.method == "POST" else None
    try:
        if action == "start":
            device, secret = services.start_totp_enrolment(actor=user, code=request.POST.get("code", ""))
            return _scan_page(request, user, device, secret, context)
        if action == "confirm":
            return _confirm(request, user, step, context)
    except TooManyAttempts as exc:
        if step is not None:
            twofactor.clear_pending(request)
        context["locked"] = True
        return _throttled(render(request, "accounts/two_factor_enrol.html", context), exc)
    except DomainError as exc:
        context["errors"] = _errors(exc)
        return render(request, "accounts/two_factor_enrol.html", context, status=400)
    return render(request, "accounts/two_factor_enrol.html", context)


def _scan_page(request, user, device, secret: str, context: dict, status: int = 200):
    uri = totp.provisioning_uri(totp.from_b32(secret), account=user.username, issuer=ISSUER)
    context.update(
        {
            "device": device,
            "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            "qr_svg": totp.qr_svg(uri),
        }
    )
    return render(request, "accounts/two_factor_scan.html", context, status=status)


def _confirm(request, user, step, context):
    device_id = request.POST.get("device", "")
    try:
        device, codes = services.confirm_totp_device(actor=user, device_id=device_id, code=request.POST.get("code", ""))
    except TooManyAttempts:
        raise
    except DomainError as exc:
        pending = services.enrolment_secret(actor=user, device_id=device_id)
        if pending is None:
            raise
        context["errors"] = _errors(exc)
        return _scan_page(request, user, pending[0], pending[1], context, status=400)
    if step is not None:
        next_url = twofactor.complete_sign_in(request, user, step, device)
    else:
        twofactor.mark_verified(request, device)  # this session just proved the new app
        next_url = reverse("accounts:profile")
    return render(request, "accounts/recovery_codes.html", {"codes": codes, "next_url": next_url, "new_app": True})


@login_required
@require_POST
def renew_recovery_codes(request):
    try:
        codes = services.renew_recovery_codes(actor=request.user, code=request.POST.get("code", ""))
    except DomainError as exc:
        return _profile_redirect(request, exc)
    return render(request, "accounts/recovery_codes.html", {"codes": codes, "next_url": reverse("accounts:profile")})


@login_required
@require_POST
def disable(request):
    return _profile_change(
        request,
        lambda: services.disable_two_factor(actor=request.user, code=request.POST.get("code", "")),
        _("Two-factor authentication is off."),
        then=lambda: twofactor.mark_verified(request, None),
    )


@login_required
@require_POST
def change_password(request):
    def change():
        services.change_password(
            actor=request.user,
            current_password=request.POST.get("current_password", ""),
            new_password=request.POST.get("new_password", ""),
            new_password_again=request.POST.get("new_password_again", ""),
            code=request.POST.get("code", ""),
        )

    # This session stays signed in; the user's other sessions end (their password hash no longer matches).
    then = lambda: update_session_auth_hash(request, request.user)  # noqa: E731
    return _profile_change(request, change, _("Your password was changed."), then=then)


@login_required
@require_POST
def change_email(request):
    def change():
        services.change_email(
            actor=request.user,
            email=request.POST.get("email", ""),
            current_password=request.POST.get("current_password", ""),
            code=request.POST.get("code", ""),
        )

    return _profile_change(request, change, _("Your email address was changed."))


def _profile_change(request, change, done: str, then=None):
    """Run one change asked for on the profile page; back to the profile with its message or errors."""
    try:
        change()
    except DomainError as exc:
        return _profile_redirect(request, exc)
    if then is not None:
        then()
    messages.success(request, done)
    return redirect("accounts:profile")


def _profile_redirect(request, exc: DomainError):
    for problems in _errors(exc).values():
        for message in problems:
            messages.error(request, message)
    return redirect("accounts:profile")
