"""The outside channels a notification goes through, besides the in-app inbox.

A channel knows a user's address on it (`address_of`, "" when they have none) and sends one
delivery (`send`), raising on failure so the delivery is retried. What it sends is the notification
as rendered for the recipient, wrapped by the channel's templates in the recipient's language, with
the link made absolute with PUBLIC_URL; never anything else of the object.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from .models import Channel, Delivery

__all__ = ["EmailChannel", "CHANNELS", "enabled_channels", "absolute"]


def absolute(path: str) -> str:
    """A path of this site as a link from outside it."""
    return f"{settings.PUBLIC_URL}{path}" if path.startswith("/") else ""


class EmailChannel:
    """HTML and plain-text email through Django's email backend (SMTP, EOMS_EMAIL_*). The
    Message-ID is made from the delivery's id: were a message ever sent again (a sender killed
    between the server's acceptance and recording it), mail systems see the same message."""

    name = Channel.EMAIL

    def enabled(self) -> bool:
        return bool(settings.NOTIFY_EMAIL)

    def address_of(self, user) -> str:
        return (user.email or "").strip()

    def compose(self, delivery: Delivery) -> EmailMultiAlternatives:
        from .services import language_of

        notification = delivery.notification
        user = delivery.recipient
        with translation.override(language_of(user)):
            context = {
                "user": user,
                "name": user.display_name or user.username,
                "notification": notification,
                "link": absolute(notification.url),
                "settings_link": absolute(reverse("notifications:preferences")),
                "site": settings.PUBLIC_URL,
            }
            text = render_to_string("notifications/email/notification.txt", context)
            html = render_to_string("notifications/email/notification.html", context)
        host = urlsplit(settings.PUBLIC_URL).hostname or "eoms"
        message = EmailMultiAlternatives(
            subject=notification.title,
            body=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[delivery.address],
            headers={"Message-ID": f"<{delivery.pk}@{host}>", "Auto-Submitted": "auto-generated"},
        )
        message.attach_alternative(html, "text/html")
        return message

    def send(self, delivery: Delivery) -> None:
        message = self.compose(delivery)
        with get_connection(fail_silently=False) as connection:
            sent = connection.send_messages([message])
        if sent != 1:
            raise RuntimeError("the mail server did not take the message")


CHANNELS = {Channel.EMAIL: EmailChannel()}


def enabled_channels() -> dict:
    return {name: channel for name, channel in CHANNELS.items() if channel.enabled()}
