"""The outside channels a notification goes through, besides the in-app inbox.

A channel knows a user's address on it (`address_of`, "" when they have none) and sends one
delivery (`send`), raising on failure so the delivery is retried. What it sends is the notification
as rendered for the recipient, wrapped by the channel's templates in the recipient's language, with
the link made absolute with PUBLIC_URL; never anything else of the object.
"""

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from urllib.error import HTTPError, URLError
from urllib.parse import quote, quote_plus, urlencode, urlsplit
from urllib.request import Request, urlopen

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from .models import Channel, Delivery

__all__ = [
    "EmailChannel",
    "DingTalkChannel",
    "WeComChannel",
    "SmsChannel",
    "SmsProvider",
    "ConsoleSmsProvider",
    "AliyunSmsProvider",
    "dingtalk_sign",
    "aliyun_signature",
    "CHANNELS",
    "enabled_channels",
    "absolute",
]

log = logging.getLogger("eoms.notifications")


class ChannelError(Exception):
    """A channel refused or could not take a message. The text names the status or the provider's
    code, never the URL (its query holds the robot's token) nor any key."""


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
        self._send(self.compose(delivery))

    def compose_digest(self, digest, notifications) -> EmailMultiAlternatives:
        """One email listing `notifications` (a user's daily digest), each with its link."""
        from .services import language_of

        user = digest.recipient
        with translation.override(language_of(user)):
            items = [{"notification": n, "link": absolute(n.url)} for n in notifications]
            context = {
                "user": user,
                "name": user.display_name or user.username,
                "items": items,
                "count": len(items),
                "day": digest.day.isoformat(),
                "settings_link": absolute(reverse("notifications:preferences")),
                "site": settings.PUBLIC_URL,
            }
            subject = translation.ngettext(
                "EOMS daily digest %(day)s: %(count)s notification",
                "EOMS daily digest %(day)s: %(count)s notifications",
                len(items),
            ) % {"day": context["day"], "count": len(items)}
            text = render_to_string("notifications/email/digest.txt", context)
            html = render_to_string("notifications/email/digest.html", context)
        host = urlsplit(settings.PUBLIC_URL).hostname or "eoms"
        message = EmailMultiAlternatives(
            subject=subject,
            body=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[digest.address],
            headers={"Message-ID": f"<digest-{digest.pk}@{host}>", "Auto-Submitted": "auto-generated"},
        )
        message.attach_alternative(html, "text/html")
        return message

    def send_digest(self, digest, notifications) -> None:
        self._send(self.compose_digest(digest, notifications))

    def _send(self, message) -> None:
        with get_connection(fail_silently=False) as connection:
            sent = connection.send_messages([message])
        if sent != 1:
            raise RuntimeError("the mail server did not take the message")


def _post_json(url: str, body: dict, *, what: str) -> dict:
    """POST `body` as JSON and read a JSON answer; ChannelError on a transport error or HTTP status."""
    return _http(url, what=what, data=json.dumps(body, ensure_ascii=False).encode())


def _http(url: str, *, what: str, data: bytes | None = None) -> dict:
    """A GET (or a JSON POST with `data`) to a configured http(s) URL, its JSON answer."""
    if urlsplit(url).scheme not in ("https", "http"):
        raise ChannelError(f"{what}: the configured address is not an http(s) URL")
    headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else {}
    request = Request(url, data=data, method="POST" if data is not None else "GET", headers=headers)  # noqa: S310
    try:
        with urlopen(request, timeout=settings.NOTIFY_HTTP_TIMEOUT) as response:  # noqa: S310 (scheme checked)  # nosec B310
            raw = response.read()
    except HTTPError as exc:
        raise ChannelError(f"{what} answered HTTP {exc.code}") from None
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChannelError(f"{what} unreachable: {type(reason).__name__}: {reason}") from None
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        raise ChannelError(f"{what} answered something that is not JSON") from None


def _robot_text(delivery: Delivery) -> tuple[str, str]:
    """(title, markdown) of a robot message, in the recipient's language."""
    from .services import language_of

    notification = delivery.notification
    with translation.override(language_of(delivery.recipient)):
        link = absolute(notification.url)
        lines = [f"#### {notification.title}", "", notification.body]
        if link:
            lines += ["", f"[{translation.gettext('Open in EOMS')}]({link})"]
    return notification.title, "\n".join(lines)


def _mobile(address: str) -> str:
    return address if address.lstrip("+").isdigit() else ""


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature ("加签"): Base64 of HMAC-SHA256, keyed by the secret, over
    "<timestamp in ms>\\n<secret>"; sent URL-encoded as `sign` beside `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class _RobotChannel:
    """A group robot posting to one group chat (EOMS's), mentioning the recipient by mobile number
    when their account has one; the address is that number, else their name."""

    setting = ""

    def enabled(self) -> bool:
        return bool(getattr(settings, self.setting, ""))

    def address_of(self, user) -> str:
        return (user.phone or "").strip() or (user.display_name or user.username)

    def _check(self, answer: dict) -> None:
        if answer.get("errcode") != 0:
            raise ChannelError(
                f"{self.label} robot refused: errcode {answer.get('errcode')} {answer.get('errmsg', '')}"
            )


class DingTalkChannel(_RobotChannel):
    """DingTalk custom robot (自定义机器人): a markdown message POSTed to EOMS_DINGTALK_WEBHOOK
    (…/robot/send?access_token=…), signed with EOMS_DINGTALK_SECRET when set ("加签": timestamp and
    sign added to the query), @-mentioning the recipient's mobile number."""

    name = Channel.DINGTALK
    label = "DingTalk"
    setting = "DINGTALK_WEBHOOK"

    def url(self) -> str:
        url = settings.DINGTALK_WEBHOOK
        secret = settings.DINGTALK_SECRET
        if not secret:
            return url
        timestamp = int(time.time() * 1000)
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}timestamp={timestamp}&sign={quote_plus(dingtalk_sign(secret, timestamp))}"

    def body(self, delivery: Delivery) -> dict:
        title, text = _robot_text(delivery)
        mobile = _mobile(delivery.address)
        if mobile:
            text += f"\n\n@{mobile}"
        return {
            "msgtype": "markdown",
            "markdown": {"title": title, "text": text},
            "at": {"atMobiles": [mobile] if mobile else [], "isAtAll": False},
        }

    def send(self, delivery: Delivery) -> None:
        self._check(_post_json(self.url(), self.body(delivery), what="DingTalk"))


class WeComChannel(_RobotChannel):
    """WeCom (企业微信) group robot: a text message POSTed to EOMS_WECOM_WEBHOOK
    (…/webhook/send?key=…; the key is its only credential, WeCom robots have no signature),
    mentioning the recipient by mobile number (mentioned_mobile_list; markdown messages cannot)."""

    name = Channel.WECOM
    label = "WeCom"
    setting = "WECOM_WEBHOOK"

    def body(self, delivery: Delivery) -> dict:
        notification = delivery.notification
        from .services import language_of

        with translation.override(language_of(delivery.recipient)):
            link = absolute(notification.url)
            content = f"{notification.title}\n{notification.body}"
            if link:
                content += f"\n{translation.gettext('Open in EOMS')}: {link}"
        mobile = _mobile(delivery.address)
        return {"msgtype": "text", "text": {"content": content, "mentioned_mobile_list": [mobile] if mobile else []}}

    def send(self, delivery: Delivery) -> None:
        self._check(_post_json(settings.WECOM_WEBHOOK, self.body(delivery), what="WeCom"))


# ------------------------------------------------------------------------------------------- SMS


class SmsProvider:
    """Sends one text message from an approved template: `params` fill its ${…} variables."""

    def send(self, *, phone: str, params: dict) -> None:
        raise NotImplementedError


class ConsoleSmsProvider(SmsProvider):
    """For development: writes the message to the log instead of sending it."""

    def send(self, *, phone: str, params: dict) -> None:
        log.info("SMS to %s: %s", phone, json.dumps(params, ensure_ascii=False))


def _aliyun_quote(value: str) -> str:
    return quote(value, safe="~")


def aliyun_signature(params: dict, secret: str, method: str = "GET") -> str:
    """Alibaba Cloud RPC signature (version 1.0, HMAC-SHA1): the parameters sorted by name and
    percent-encoded (RFC 3986), "<METHOD>&%2F&<encoded query>" signed with "<secret>&"."""
    query = "&".join(f"{_aliyun_quote(k)}={_aliyun_quote(str(v))}" for k, v in sorted(params.items()))
    string_to_sign = f"{method}&{_aliyun_quote('/')}&{_aliyun_quote(query)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class AliyunSmsProvider(SmsProvider):
    """Alibaba Cloud SMS (dysmsapi SendSms, API version 2017-05-25) with the RPC signature; the
    template (EOMS_SMS_TEMPLATE_CODE) and signature name (EOMS_SMS_SIGN_NAME) are the ones approved
    in the console. Answers other than Code "OK" raise ChannelError with Aliyun's code."""

    def params(self, *, phone: str, params: dict) -> dict:
        query = {
            "AccessKeyId": settings.SMS_ALIYUN_ACCESS_KEY_ID,
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": phone,
            "RegionId": settings.SMS_ALIYUN_REGION,
            "SignName": settings.SMS_SIGN_NAME,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": str(uuid.uuid4()),
            "SignatureVersion": "1.0",
            "TemplateCode": settings.SMS_TEMPLATE_CODE,
            "TemplateParam": json.dumps(params, ensure_ascii=False, separators=(",", ":")),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
        }
        query["Signature"] = aliyun_signature(query, settings.SMS_ALIYUN_ACCESS_KEY_SECRET)
        return query

    def send(self, *, phone: str, params: dict) -> None:
        url = f"{settings.SMS_ALIYUN_ENDPOINT.rstrip('/')}/?{urlencode(self.params(phone=phone, params=params))}"
        answer = _http(url, what="Aliyun SMS")
        if answer.get("Code") != "OK":
            raise ChannelError(f"Aliyun SMS refused: {answer.get('Code')} {answer.get('Message', '')}")


SMS_PROVIDERS = {"console": ConsoleSmsProvider, "aliyun": AliyunSmsProvider}


class SmsChannel:
    """A text message to the recipient's mobile number through the configured provider
    (EOMS_SMS_PROVIDER: aliyun or console). The template gets the notification's title (at most
    35 characters, Aliyun's limit for a variable) and never anything else."""

    name = Channel.SMS

    def enabled(self) -> bool:
        return settings.SMS_PROVIDER in SMS_PROVIDERS

    def address_of(self, user) -> str:
        return (user.phone or "").strip()

    def provider(self) -> SmsProvider:
        return SMS_PROVIDERS[settings.SMS_PROVIDER]()

    def send(self, delivery: Delivery) -> None:
        self.provider().send(phone=delivery.address, params={"title": delivery.notification.title[:35]})


CHANNELS = {
    Channel.EMAIL: EmailChannel(),
    Channel.DINGTALK: DingTalkChannel(),
    Channel.WECOM: WeComChannel(),
    Channel.SMS: SmsChannel(),
}


def enabled_channels() -> dict:
    return {name: channel for name, channel in CHANNELS.items() if channel.enabled()}
