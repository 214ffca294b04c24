"""Request id and client address for every request, available to services through core.context;
and the security headers of every page and API response (SecurityHeadersMiddleware)."""

import ipaddress
import json
import logging
import re
import uuid

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.db import DatabaseError, transaction
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _

from . import audit
from .api import PROBLEM_CONTENT_TYPE, problem
from .context import RequestInfo, reset_request_info, set_request_info

log = logging.getLogger("eoms.security")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def client_ip(request) -> str | None:
    """The caller's address. X-Forwarded-For is believed only when the peer is a trusted proxy;
    then the right-most address that is not itself a trusted proxy is the client."""
    remote = request.META.get("REMOTE_ADDR") or None
    trusted = settings.TRUSTED_PROXIES
    if not remote or not trusted or not _in_networks(remote, trusted):
        return remote
    forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
    for hop in reversed(forwarded):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote
        if not _in_networks(hop, trusted):
            return hop
    return remote


def _in_networks(addr: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    for net in networks:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        request.client_ip = client_ip(request)
        token = set_request_info(
            RequestInfo(
                ip=request.client_ip, request_id=request_id, user_agent=request.headers.get("User-Agent", "")[:200]
            )
        )
        try:
            response = self.get_response(request)
            if response.status_code == 403:
                _audit_denied(request, response)
        finally:
            reset_request_info(token)
        if request.path.startswith("/api/") and response.status_code in (404, 405):
            response = _api_problem(request, response)
        response["X-Request-ID"] = request_id
        return response


def _audit_denied(request, response) -> None:
    """Every refused authorization (a 403, from the API or a page: a role or scope that does not
    allow the action, a change without its CSRF token) is an audit entry of its own: who, from
    where, which method and path (never the query string, which may carry what was searched for)
    and the problem's code. Written in a transaction of its own (the refused work was rolled
    back); a failure to write it is logged and does not change the answer."""
    code = ""
    if response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE):
        try:
            code = str(json.loads(response.content).get("code", ""))[:80]
        except (ValueError, AttributeError):
            code = ""
    user = getattr(request, "user", None)
    actor = user if getattr(user, "is_authenticated", False) else None
    try:
        with transaction.atomic():
            audit.record(
                actor=actor,
                action="security.access_denied",
                object_type="http.request",
                object_id=request.request_id,
                object_repr=f"{request.method} {request.path}"[:200],
                changes={"method": request.method, "path": request.path[:500], "code": code},
            )
    except DatabaseError:
        log.exception("could not audit a denied request")


def _api_problem(request, response):
    """Errors leave the API as problem+json, also those Django answers before any endpoint runs: a
    path no endpoint has (404) and a method the endpoint does not take (405)."""
    if response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE):
        return response
    if response.status_code == 404:
        return problem(404, "not_found", _("Not found"), _("Nothing found at %(path)s.") % {"path": request.path})
    allowed = response.get("Allow", "")
    converted = problem(
        405,
        "method_not_allowed",
        _("Method not allowed"),
        _("%(method)s is not allowed here; use %(allowed)s.") % {"method": request.method, "allowed": allowed},
    )
    if allowed:
        converted["Allow"] = allowed
    return converted


# Scripts only from our own origin, never inline (no 'unsafe-inline', no 'unsafe-eval'): the pages load
# their scripts from /static/ and pass data in <script type="application/json"> (json_script), which is
# not executed. Inline style attributes are allowed (templates and Tabler use them; styles run no code).
# Tabler's icons and Swagger UI's images are data: URIs. No page may be framed, by anyone.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class SecurityHeadersMiddleware:
    """Content-Security-Policy and `Cache-Control: no-store` on every response past the static files
    (WhiteNoise answers those before this middleware and lets them be cached): pages and API responses
    carry personal data that no browser or proxy should keep. A Cache-Control a view set itself is kept,
    with no-store added. nosniff, Referrer-Policy and HSTS come from Django's SecurityMiddleware, and
    X-Frame-Options from XFrameOptionsMiddleware (settings.py) or, where a view is exempt from it, here."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        # Also on the views Django's XFrameOptionsMiddleware leaves alone (the API's are xframe-exempt):
        # nothing of EOMS is to be framed, as frame-ancestors 'none' says to browsers that read CSP.
        response.setdefault("X-Frame-Options", "DENY")
        if "Cache-Control" not in response:
            response["Cache-Control"] = "no-store"
        elif "no-store" not in response["Cache-Control"]:
            patch_cache_control(response, no_store=True)
        return response


class PageMessageMiddleware(MessageMiddleware):
    """Django's messages (the notices a page shows once) for pages only: the JSON API shows none and
    adds none, and setting up the message storage of every API request cost a tenth of a cheap one."""

    def process_request(self, request):
        if not request.path.startswith("/api/"):
            super().process_request(request)
