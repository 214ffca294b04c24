"""Helpers shared by the pages of every context."""

from collections.abc import Callable

from django.conf import settings

__all__ = ["context", "register_nav"]

# Template variable -> factory(user) of a lazy object the navigation bar reads (a context registers
# its own in AppConfig.ready(), so the shared kernel names no business context).
_NAV: dict[str, Callable[[object], object]] = {}


def register_nav(name: str, factory: Callable[[object], object]) -> None:
    """Put `factory(user)` in every page's context as `name` for a signed-in user (None otherwise).
    The object should read lazily: a page that does not show the navigation runs no query."""
    _NAV[name] = factory


def context(request) -> dict:
    """Template context for every page: the user's roles, the languages and the registered
    navigation objects."""
    from eoms.accounts.selectors import roles_of

    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return {
        "eoms_roles": roles_of(user) if user is not None else frozenset(),
        "eoms_languages": settings.LANGUAGES,
        **{name: factory(user) if signed_in else None for name, factory in _NAV.items()},
    }
