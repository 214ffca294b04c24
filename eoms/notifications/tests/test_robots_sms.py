"""DingTalk and WeCom group robots and text messages, against a local HTTP server started by the test
that checks each request the way the real service does: DingTalk's signature and Aliyun's are
verified here by implementations written from their documentation, independent of ours."""

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from eoms.approvals.models import ApprovalTask
from eoms.core import relay
from eoms.notifications.models import Delivery, DeliveryState
from eoms.notifications.services import send_deliveries
from eoms.orders.state import OrderState

pytestmark = pytest.mark.django_db
TOKEN = "robot-access-token-0123"
SECRET = "SEC-robot-signing-secret-4567"
KEY_ID = "LTAI-key-id"
KEY_SECRET = "aliyun-key-secret-89"


class Receiver:
    """A local HTTP server: records every request and answers with `answer` (JSON)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answer: dict = {"errcode": 0, "errmsg": "ok"}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                receiver.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                        "raw_query": parts.query,
                        "content_type": self.headers.get("Content-Type", ""),
                        "body": json.loads(self.rfile.read(length)) if length else None,
                    }
                )
                data = json.dumps(receiver.answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def deliver(capture) -> None:
    with capture(execute=True):
        relay.drain(relay.InProcessTransport())


@pytest.fixture
def phones(world):
    world.approver.phone = "13800000001"
    world.approver.language = "en"
    world.approver.save()
    world.pm.phone = "13900000002"
    world.pm.save()
    return world


# ------------------------------------------------------------------------------------- DingTalk


def dingtalk_expected_sign(secret: str, timestamp: str) -> str:
    """From DingTalk's documentation (自定义机器人安全设置, 加签)."""
    string_to_sign = f"{timestamp}\n{secret}"
    hmac_code = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), digestmod=hashlib.sha256).digest()
    return base64.b64encode(hmac_code).decode()


def test_dingtalk_robot_signed_and_mentioning_the_assignee(
    phones, receiver, settings, django_capture_on_commit_callbacks
):
    world = phones
    settings.DINGTALK_WEBHOOK = f"{receiver.url}/robot/send?access_token={TOKEN}"
    settings.DINGTALK_SECRET = SECRET
    settings.PUBLIC_URL = "https://eoms.example.com"
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    task = ApprovalTask.objects.get(instance__subject_id=str(order.id))

    (got,) = receiver.requests
    assert (got["method"], got["path"], got["content_type"]) == (
        "POST",
        "/robot/send",
        "application/json; charset=utf-8",
    )
    assert set(got["query"]) == {"access_token", "timestamp", "sign"}
    assert got["query"]["access_token"] == TOKEN
    assert abs(int(got["query"]["timestamp"]) - time.time() * 1000) < 60_000
    assert got["query"]["sign"] == dingtalk_expected_sign(SECRET, got["query"]["timestamp"])
    subject = f"{order.number} 道路改造工程施工"
    assert got["body"] == {
        "msgtype": "markdown",
        "markdown": {
            "title": f"Approval needed: {subject}",
            "text": f"#### Approval needed: {subject}\n\n{subject} is waiting for your decision.\n\n"
            f"[Open in EOMS](https://eoms.example.com/approvals/tasks/{task.pk}/)\n\n@13800000001",
        },
        "at": {"atMobiles": ["13800000001"], "isAtAll": False},
    }
    assert SECRET not in json.dumps(got["body"])
    delivery = Delivery.objects.get()
    assert (delivery.channel, delivery.address, delivery.state) == ("dingtalk", "13800000001", DeliveryState.SENT)


def test_dingtalk_refusal_is_retried_and_the_error_keeps_the_token_out(
    phones, receiver, settings, django_capture_on_commit_callbacks
):
    settings.DINGTALK_WEBHOOK = f"{receiver.url}/robot/send?access_token={TOKEN}"
    settings.DINGTALK_SECRET = SECRET
    receiver.answer = {"errcode": 310000, "errmsg": "sign not match"}
    phones.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 1)
    assert delivery.last_error == "ChannelError: DingTalk robot refused: errcode 310000 sign not match"
    receiver.server.shutdown()
    Delivery.objects.update(due_at=delivery.created_at)
    settings.DINGTALK_WEBHOOK = f"http://127.0.0.1:1/robot/send?access_token={TOKEN}"
    send_deliveries()
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("ChannelError: DingTalk unreachable: ConnectionRefusedError")
    assert TOKEN not in delivery.last_error and SECRET not in delivery.last_error


# ---------------------------------------------------------------------------------------- WeCom


def test_wecom_robot_mentions_by_mobile(phones, receiver, settings, django_capture_on_commit_callbacks):
    world = phones
    settings.WECOM_WEBHOOK = f"{receiver.url}/cgi-bin/webhook/send?key={TOKEN}"
    settings.PUBLIC_URL = "https://eoms.example.com"
    world.approver.language = "zh-hans"
    world.approver.save()
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    task = ApprovalTask.objects.get(instance__subject_id=str(order.id))
    (got,) = receiver.requests
    assert (got["method"], got["path"], got["query"]) == ("POST", "/cgi-bin/webhook/send", {"key": TOKEN})
    subject = f"{order.number} 道路改造工程施工"
    assert got["body"] == {
        "msgtype": "text",
        "text": {
            "content": f"待审批：{subject}\n{subject} 等待您的审批。\n"
            f"在 EOMS 中打开: https://eoms.example.com/approvals/tasks/{task.pk}/",
            "mentioned_mobile_list": ["13800000001"],
        },
    }


def test_a_user_without_a_mobile_is_named_not_mentioned(world, receiver, settings, django_capture_on_commit_callbacks):
    settings.WECOM_WEBHOOK = f"{receiver.url}/cgi-bin/webhook/send?key={TOKEN}"
    world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    (got,) = receiver.requests
    assert got["body"]["text"]["mentioned_mobile_list"] == []
    assert Delivery.objects.get().address == world.approver.display_name


# ------------------------------------------------------------------------------------------ SMS


def aliyun_expected_signature(params: dict, secret: str) -> str:
    """From Alibaba Cloud's RPC signature documentation (签名机制, version 1.0)."""

    def percent_encode(s: str) -> str:
        return quote(s, safe="").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")

    canonical = "&".join(f"{percent_encode(k)}={percent_encode(params[k])}" for k in sorted(params))
    string_to_sign = "GET&" + percent_encode("/") + "&" + percent_encode(canonical)
    return base64.b64encode(hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()).decode()


@pytest.fixture
def aliyun(receiver, settings):
    settings.SMS_PROVIDER = "aliyun"
    settings.SMS_ALIYUN_ENDPOINT = receiver.url
    settings.SMS_ALIYUN_ACCESS_KEY_ID = KEY_ID
    settings.SMS_ALIYUN_ACCESS_KEY_SECRET = KEY_SECRET
    settings.SMS_SIGN_NAME = "工程订单"
    settings.SMS_TEMPLATE_CODE = "SMS_154950909"
    receiver.answer = {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "F655A8D5"}
    return receiver


def test_aliyun_sms_signed_request_for_a_new_task_only(phones, aliyun, django_capture_on_commit_callbacks):
    world = phones
    order = world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    world.decide(order, "approve")  # the PM is told three things; none of them by text message (default)
    deliver(django_capture_on_commit_callbacks)
    (got,) = aliyun.requests
    assert (got["method"], got["path"], got["body"]) == ("GET", "/", None)
    query = dict(got["query"])
    signature = query.pop("Signature")
    assert signature == aliyun_expected_signature(query, KEY_SECRET)
    assert {k: v for k, v in query.items() if k not in ("SignatureNonce", "Timestamp")} == {
        "AccessKeyId": KEY_ID,
        "Action": "SendSms",
        "Format": "JSON",
        "PhoneNumbers": "13800000001",
        "RegionId": "cn-hangzhou",
        "SignName": "工程订单",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_154950909",
        "TemplateParam": json.dumps(
            {"title": f"Approval needed: {order.number} 道路"}, ensure_ascii=False, separators=(",", ":")
        ),
        "Version": "2017-05-25",
    }
    assert KEY_SECRET not in got["raw_query"]
    assert list(Delivery.objects.values_list("channel", "address", "state")) == [("sms", "13800000001", "sent")]


def test_aliyun_refusal_is_retried_with_its_code(phones, aliyun, django_capture_on_commit_callbacks):
    aliyun.answer = {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发小时级流控Permits:5"}
    phones.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 1)
    assert delivery.last_error == "ChannelError: Aliyun SMS refused: isv.BUSINESS_LIMIT_CONTROL 触发小时级流控Permits:5"


def test_the_console_provider_writes_the_message_to_the_log(
    phones, settings, caplog, django_capture_on_commit_callbacks
):
    settings.SMS_PROVIDER = "console"
    order = phones.order(OrderState.PENDING_APPROVAL)
    with caplog.at_level(logging.INFO, logger="eoms.notifications"):
        deliver(django_capture_on_commit_callbacks)
    lines = [r.getMessage() for r in caplog.records if r.name == "eoms.notifications"]
    assert lines == [f'SMS to 13800000001: {{"title": "Approval needed: {order.number} 道路"}}']
    assert Delivery.objects.get().state == DeliveryState.SENT


def test_no_mobile_no_text_message(world, settings, django_capture_on_commit_callbacks):
    settings.SMS_PROVIDER = "console"
    world.order(OrderState.PENDING_APPROVAL)
    deliver(django_capture_on_commit_callbacks)
    assert Delivery.objects.count() == 0
