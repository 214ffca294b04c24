"""The webhook pages: administrators only, in Chinese, the secret shown once, the log and its buttons."""

import re

import pytest

from eoms.webhooks.models import Subscription, SubscriptionState

pytestmark = pytest.mark.django_db
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


@pytest.fixture
def admin(client, world):
    client.force_login(world.admin)
    return client


def test_others_get_403(client, world):
    client.force_login(world.pm)
    assert client.get("/webhooks/").status_code == 403
    assert client.get("/webhooks/new/").status_code == 403


def test_create_shows_the_secret_once_in_chinese(admin, world):
    page = admin.get("/webhooks/new/", **ZH).content.decode()
    assert "新建 Webhook" in page and "全部事件" in page
    response = admin.post(
        "/webhooks/new/",
        {"target_url": "https://93.184.216.34/in", "event_types": ["orders.order_created"], "description": "ERP"},
        **ZH,
    )
    assert response.status_code == 200
    subscription = Subscription.objects.get()
    page = response.content.decode()
    assert f'value="{subscription.secret}"' in page
    assert "签名密钥" in page
    detail = admin.get(f"/webhooks/{subscription.pk}/", **ZH).content.decode()
    assert subscription.secret not in detail
    assert "投递记录" in detail and "暂停" in detail
    listing = admin.get("/webhooks/", **ZH).content.decode()
    assert "https://93.184.216.34/in" in listing and "启用" in listing


def test_an_internal_target_is_refused_on_the_form(admin):
    response = admin.post("/webhooks/new/", {"target_url": "https://[::1]/in", "event_types": ["*"]}, **ZH)
    assert response.status_code == 422
    assert re.search(r"内部地址 \(::1\)", response.content.decode())
    assert Subscription.objects.count() == 0


def test_pause_and_resume_buttons(admin, world):
    subscription = Subscription.objects.create(
        owner=world.admin, target_url="https://93.184.216.34/a", event_types=["*"], secret="whsec_x"
    )
    response = admin.post(f"/webhooks/{subscription.pk}/pause/", {"reason": "升级"}, follow=True, **ZH)
    assert "Webhook 已暂停。" in response.content.decode()
    subscription.refresh_from_db()
    assert (subscription.state, subscription.paused_reason) == (SubscriptionState.PAUSED, "升级")
    admin.post(f"/webhooks/{subscription.pk}/resume/")
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.ACTIVE


def test_the_delivery_log_and_its_redeliver_button(
    admin, world, receiver, allow_private, settings, django_capture_on_commit_callbacks
):
    from eoms.webhooks.models import Delivery, DeliveryState
    from eoms.webhooks.services import create_subscription

    from .test_delivery import deliver_events

    deliver_events()
    subscription, _ = create_subscription(
        actor=world.admin, target_url=receiver.url, event_types=["orders.order_created"]
    )
    settings.WEBHOOKS_MAX_ATTEMPTS = 1
    receiver.status = 500
    world.order()
    deliver_events()
    delivery = Delivery.objects.get()
    page = admin.get(f"/webhooks/{subscription.pk}/", **ZH).content.decode()
    assert "orders.order_created" in page and "失败" in page and "HTTP 500 Internal Server Error" in page
    assert f"/webhooks/{subscription.pk}/deliveries/{delivery.pk}/redeliver/" in page
    receiver.status = 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(f"/webhooks/{subscription.pk}/deliveries/{delivery.pk}/redeliver/", follow=True, **ZH)
    assert "已重新投递，新的尝试已记入日志。" in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (DeliveryState.DELIVERED, 2, 200)
    assert len(receiver.requests) == 2
    assert "重新投递" in response.content.decode()
