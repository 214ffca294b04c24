"""OAuth2 scopes: one read and one write scope per API context, enforced for every API request.

A token may call GET (and HEAD, OPTIONS) on /api/v1/<context>/… with "<context>:read" and the unsafe
methods with "<context>:write". Scopes only narrow: the token acts as its user (or, for client
credentials, as the client's owner), whose roles and project scope still apply on top. There is no
"accounts:write": a delegated token cannot mint personal API tokens.
"""

from django.utils.translation import gettext_lazy as _
from oauth2_provider.scopes import BaseScopes

__all__ = ["SCOPES", "SAFE_METHODS", "required_scope", "ClientScopes", "scope_list"]

SCOPES = {
    "accounts:read": _("Read your profile"),
    "orders:read": _("Read engineering orders"),
    "orders:write": _("Create and change engineering orders"),
    "approvals:read": _("Read approvals and tasks"),
    "approvals:write": _("Decide approval tasks"),
    "masterdata:read": _("Read customers, projects and suppliers"),
    "masterdata:write": _("Change customers, projects and suppliers"),
    "notifications:read": _("Read notifications"),
    "notifications:write": _("Mark notifications read"),
    "webhooks:read": _("Read webhooks and their deliveries"),
    "webhooks:write": _("Manage webhooks"),
    "reports:read": _("Read reports and dashboards"),
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_PREFIX = "/api/v1/"


def required_scope(method: str, path: str) -> str:
    """The scope a request needs: "<context>:read" or "<context>:write" ("" outside the API)."""
    if not path.startswith(API_PREFIX):
        return ""
    context = path[len(API_PREFIX) :].split("/", 1)[0]
    return f"{context}:{'read' if method.upper() in SAFE_METHODS else 'write'}"


def scope_list(text: str) -> list[str]:
    """The known scopes of a space-separated text, in the catalogue's order."""
    wanted = set((text or "").split())
    return [s for s in SCOPES if s in wanted]


class ClientScopes(BaseScopes):
    """DOT's scope backend: every scope exists; a client may ask for those an administrator allowed it,
    and gets all of them when it names none."""

    def get_all_scopes(self):
        return {name: str(label) for name, label in SCOPES.items()}

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        if application is None:
            return list(SCOPES)
        from .selectors import allowed_scopes

        return allowed_scopes(application)

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return self.get_available_scopes(application=application, request=request)
