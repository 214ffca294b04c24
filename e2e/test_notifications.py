"""Notifications in a real browser: the approver sees the bell's count on every page, opens
the inbox, clicks through to the task, and the count is gone; settings changed on a phone."""

import re

import pytest
from playwright.sync_api import expect

from eoms.core import relay
from eoms.orders.state import OrderState

from .test_approval_inbox import PHONE, login, no_horizontal_scroll

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def phone(browser, live_server):
    context = browser.new_context(
        locale="en-US", base_url=live_server.url, viewport=PHONE, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def test_a_task_notification_from_bell_to_task(page, world):
    order = world.order(OrderState.PENDING_APPROVAL, title="滨江大道排水管网改造")
    relay.drain(relay.InProcessTransport())  # what the relay thread of `eoms run` does

    login(page, world.approver.username)
    expect(page.locator("#nav-notification-count")).to_have_text("1")
    page.goto("/orders/")
    expect(page.locator("#nav-notification-count")).to_have_text("1")

    page.click("#nav-notifications")
    expect(page).to_have_url(re.compile(r"/notifications/$"))
    item = page.locator("#notification-list [data-unread='1']")
    expect(item).to_have_count(1)
    expect(item).to_contain_text(f"Approval needed: {order.number} 滨江大道排水管网改造")
    expect(item).to_contain_text("is waiting for your decision.")

    item.locator("button.notification-open").click()
    expect(page).to_have_url(re.compile(r"/approvals/tasks/[0-9a-f-]{36}/$"))
    expect(page.locator("#task-subject")).to_contain_text(order.number)
    expect(page.locator("#nav-notification-count")).to_have_count(0)

    page.goto("/notifications/")
    expect(page.locator("#notification-list [data-unread='1']")).to_have_count(0)
    expect(page.locator("#notification-list [data-unread='0']")).to_have_count(1)


def test_settings_on_a_phone(phone, world):
    from eoms.notifications.models import NotificationPreferences

    login(phone, world.approver.username)
    phone.goto("/notifications/")
    phone.click("#notification-settings")
    expect(phone).to_have_url(re.compile(r"/notifications/preferences/$"))
    no_horizontal_scroll(phone)
    phone.locator("#id_order_transitioned__email").uncheck()
    phone.fill("#id_quiet_from", "22:00")
    phone.fill("#id_quiet_until", "07:00")
    phone.click("#save-preferences")
    expect(phone.locator(".alert-success")).to_contain_text("Notification settings saved.")
    expect(phone.locator("#id_order_transitioned__email")).not_to_be_checked()
    no_horizontal_scroll(phone)
    prefs = NotificationPreferences.objects.get(user=world.approver)
    assert prefs.wants("order_transitioned", "email") is False
    assert prefs.wants("task_assigned", "email") is True
    assert (prefs.quiet_from.isoformat(), prefs.quiet_until.isoformat()) == ("22:00:00", "07:00:00")


def test_an_administrator_sends_failed_deliveries_again_from_the_dead_letter_page(page, world):
    """Two emails failed for good while the mail server was down; the administrator finds them from
    the dead-letter page, discards one (confirming) and sends the other again."""
    from eoms.notifications.models import DeliveryState
    from eoms.notifications.tests.api_matrix import failed_delivery

    keep, drop = failed_delivery(world), failed_delivery(world)
    login(page, world.admin.username)
    page.click("#nav-dead-letters")
    source = page.locator("[data-failure-source='notifications.deliveries']")
    expect(source).to_contain_text("Notification deliveries that failed")
    expect(source.locator(".badge")).to_have_text("2")
    source.click()
    expect(page).to_have_url(re.compile(r"/notifications/deliveries/$"))
    expect(page.locator("#delivery-table [data-delivery]")).to_have_count(2)

    page.locator(f"[data-delivery='{drop.pk}'] input[name=ids]").check()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#deliveries-discard")
    expect(page.locator(".alert-success")).to_contain_text("1 delivery discarded.")
    expect(page.locator("#delivery-table [data-delivery]")).to_have_count(1)

    page.locator(f"[data-delivery='{keep.pk}'] input[name=ids]").check()
    page.click("#deliveries-retry")
    expect(page.locator(".alert-success")).to_contain_text("1 delivery will be sent again.")
    expect(page.locator("#delivery-table [data-delivery]")).to_have_count(0)
    expect(page.locator("#delivery-summary")).to_contain_text("0 failed")
    keep.refresh_from_db()
    drop.refresh_from_db()
    # Sent again at once (the tests' mail backend takes it), its attempts counted afresh.
    assert (keep.state, keep.attempts, drop.state) == (DeliveryState.SENT, 1, DeliveryState.DISCARDED)
