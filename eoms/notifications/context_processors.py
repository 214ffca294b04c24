"""The page header's bell: the signed-in user's unread notification count, read lazily (a page that
does not show the header runs no query) with one COUNT on the (recipient, read_at) index."""

from django.utils.functional import cached_property

__all__ = ["NotificationNav"]


class NotificationNav:
    """Read by base.html as `notification_nav.unread`."""

    def __init__(self, user):
        self.user = user

    @cached_property
    def unread(self) -> int:
        from .selectors import unread_count

        return unread_count(actor=self.user)
