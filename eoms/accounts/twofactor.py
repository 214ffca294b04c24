"""Where a browser session stands with the second factor, and the gate that holds it there.

After a right password, a user with an authenticator app (or whose role requires one, without one yet)
is *not* signed in: Django's login() is not called. The session only remembers, for ten minutes, who
gave the password and what is still to come (PENDING: "verify" a code, or "enrol" an app). Every page
then redirects to that step, and the API sees nobody (401), because there is no signed-in user at all:
whatever forgets to check stays closed.

A signed-in session records the device it was verified with (VERIFIED). A session that is signed in
without having passed the second factor its user now needs (signed in through another door such as the
back office's login form, or before the user enrolled elsewhere, or a required role was given since) is
signed out by the gate on its next request and put back to the pending step.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import login, logout
from django.shortcuts import redirect
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from . import selectors

__all__ = [
    "PENDING",
    "VERIFIED",
    "PENDING_SECONDS",
    "Pending",
    "stage_after_password",
    "begin_pending",
    "pending",
    "clear_pending",
    "complete_sign_in",
    "mark_verified",
    "session_state",
    "TwoFactorMiddleware",
]

PENDING = "eoms_2fa_pending"
VERIFIED = "eoms_2fa_device"
PENDING_SECONDS = 600
STAGE_URLS = {"verify": "accounts:two_factor_verify", "enrol": "accounts:two_factor_enrol"}


@dataclass(frozen=True)
class Pending:
    user_id: str
    stage: str  # "verify" or "enrol"
    backend: str
    next: str

    @property
    def url(self) -> str:
        return reverse(STAGE_URLS[self.stage])


def stage_after_password(user) -> str | None:
    """What a user who gave the right password still owes: "verify", "enrol" or None (signed in)."""
    if selectors.confirmed_device(user) is not None:
        return "verify"
    if selectors.requires_two_factor(user):
        return "enrol"
    return None


def begin_pending(request, user, *, stage: str, next_url: str = "", backend: str = "") -> Pending:
    """Remember that `user` gave the password and owes `stage`; a new session key (no fixation)."""
    request.session.cycle_key()
    backend = backend or getattr(user, "backend", "") or settings.AUTHENTICATION_BACKENDS[0]
    request.session[PENDING] = {
        "user": str(user.pk),
        "stage": stage,
        "backend": backend,
        "next": next_url,
        "until": time.time() + PENDING_SECONDS,
    }
    return pending(request)


def pending(request) -> Pending | None:
    data = request.session.get(PENDING)
    if not isinstance(data, dict):
        return None
    if data.get("until", 0) < time.time() or data.get("stage") not in STAGE_URLS:
        request.session.pop(PENDING, None)
        return None
    return Pending(user_id=data["user"], stage=data["stage"], backend=data["backend"], next=data.get("next", ""))


def clear_pending(request) -> None:
    request.session.pop(PENDING, None)


def safe_next(request, url: str) -> str:
    if url and url_has_allowed_host_and_scheme(url, {request.get_host()}, require_https=request.is_secure()):
        return url
    return reverse(settings.LOGIN_REDIRECT_URL)


def complete_sign_in(request, user, step: Pending, device=None) -> str:
    """The second factor is done: sign `user` in (Django's login, a new session key) and record the
    device this session was verified with. Returns where to go next."""
    next_url = safe_next(request, step.next)
    request.eoms_second_factor = True  # for the sign-in's audit entry (accounts.apps, user_logged_in)
    login(request, user, backend=step.backend)
    clear_pending(request)
    mark_verified(request, device)
    return next_url


def mark_verified(request, device) -> None:
    if device is not None:
        request.session[VERIFIED] = str(device.pk)
    else:
        request.session.pop(VERIFIED, None)
    request._eoms_2fa_state = "ok"


def session_state(request) -> str:
    """For a signed-in session: "ok", or the step it still owes ("verify" or "enrol"). One query for
    the user's device (and the roles, cached on the user, when some roles require two-factor)."""
    cached = getattr(request, "_eoms_2fa_state", None)
    if cached is not None:
        return cached
    user = request.user
    device = selectors.confirmed_device(user)
    if device is not None:
        state = "ok" if request.session.get(VERIFIED) == str(device.pk) else "verify"
    else:
        state = "enrol" if selectors.requires_two_factor(user) else "ok"
    request._eoms_2fa_state = state
    return state


def _open_paths() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(exact paths, prefixes) a half-signed-in session may still reach. Worked out once per URL
    configuration, script prefix and static URL (three reverse() calls cost more than the rest of the
    gate; the gate runs on every request)."""
    key = (get_urlconf(), settings.ROOT_URLCONF, get_script_prefix(), settings.STATIC_URL)
    paths = _OPEN_PATHS.get(key)
    if paths is None:
        exact = tuple(reverse(name) for name in ("accounts:two_factor_verify", "accounts:two_factor_enrol", "logout"))
        prefixes = (
            "/" + settings.STATIC_URL.lstrip("/"),
            "/i18n/",
            "/healthz",
            "/readyz",
            "/metrics",
            "/favicon.ico",
            # OAuth2 endpoints that authenticate the client, never the browser's session (the authorization
            # endpoint, /o/authorize/, does use the session and stays behind the gate).
            "/o/token/",
            "/o/revoke_token/",
            "/o/introspect/",
            "/.well-known/",
        )
        paths = _OPEN_PATHS[key] = (exact, prefixes)
    return paths


_OPEN_PATHS: dict[tuple, tuple[tuple[str, ...], tuple[str, ...]]] = {}


class TwoFactorMiddleware:
    """Holds a session at its pending step: every page redirects there, the API answers 401 (nobody is
    signed in). Runs after AuthenticationMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.gate(request) or self.get_response(request)

    def gate(self, request):
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None  # no session: nobody signed in and nothing pending (every bearer-token API call)
        exact, prefixes = _open_paths()
        path = request.path
        if path in exact or path.startswith(prefixes):
            return None
        api = path.startswith("/api/")
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            state = session_state(request)
            if state == "ok":
                return None
            next_url = request.get_full_path() if request.method == "GET" and not api else ""
            logout(request)  # signed out: no page and no API call runs as this user from here
            step = begin_pending(request, user, stage=state, next_url=next_url)
            return None if api else redirect(step.url)
        if api:
            return None
        step = pending(request) if hasattr(request, "session") else None
        return None if step is None else redirect(step.url)
