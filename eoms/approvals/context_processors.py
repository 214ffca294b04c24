"""Template context for the navigation bar: the signed-in user's pending approval count and the
link to the approval flows. Both are lazy: a page that never shows the bar runs no query."""

from django.urls import NoReverseMatch, reverse
from django.utils.functional import cached_property

__all__ = ["approvals"]


class _ApprovalNav:
    """Read by base.html as `approval_nav.pending` and `approval_nav.definitions_url`."""

    def __init__(self, user):
        self.user = user

    @cached_property
    def pending(self) -> int:
        from .selectors import TaskFilters, list_tasks

        return list_tasks(actor=self.user, filters=TaskFilters(box="pending")).count()

    @cached_property
    def definitions_url(self) -> str:
        """The flow editor's list, for users who may read flows; "" when they may not (or when the
        editor's pages are not mounted), so the link is simply left out."""
        from .policies import can_view_definitions

        if not can_view_definitions(self.user):
            return ""
        try:
            return reverse("approvals:definitions")
        except NoReverseMatch:
            return ""


def approvals(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"approval_nav": None}
    return {"approval_nav": _ApprovalNav(user)}
