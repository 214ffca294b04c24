"""Helpers shared by the pages of every context."""

from django.conf import settings

__all__ = ["context"]


def context(request) -> dict:
    """Template context for every page: the user's roles and the languages."""
    from eoms.accounts.selectors import roles_of

    user = getattr(request, "user", None)
    return {
        "eoms_roles": roles_of(user) if user is not None else frozenset(),
        "eoms_languages": settings.LANGUAGES,
    }
