"""A task notification in a real browser: the approver sees the bell's count on every page, opens
the inbox, clicks through to the task, and the count is gone."""

import re

import pytest
from playwright.sync_api import expect

from eoms.core import relay
from eoms.orders.state import OrderState

from .test_approval_inbox import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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
