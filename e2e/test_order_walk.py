"""A project manager and an approver walk a new order from 立项 to 签订 in a real browser."""

import re

import pytest
from playwright.sync_api import expect

from eoms.orders.models import Order
from eoms.testing.world import PDF

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pass-word-123"  # eoms.testing.factories.UserFactory


def login(page, username):
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/$"))


def logout(page):
    page.click("#user-menu")
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login/"))


def take(page, name, *, comment="", upload=None):
    action = page.locator(f"details.eoms-action[data-transition='{name}']")
    action.locator("summary").click()
    if comment:
        action.locator("[name$=comment]").fill(comment)
    if upload:
        kind, filename = upload
        action.locator("input[type=file]").set_input_files(
            {"name": filename, "mimeType": "application/pdf", "buffer": PDF}
        )
        action.locator("select[name$=kind]").select_option(kind)
    action.locator("button[type=submit]").click()


def test_order_from_initiation_to_signed(page, world, tmp_path):
    login(page, world.pm.username)
    page.goto("/orders/new/")
    page.select_option("#order-form select[name=project]", str(world.project.id))
    page.fill("#order-form input[name=title]", "滨江大道排水管网改造")
    page.fill("#order-form input[name=contract_amount]", "2380000.00")
    page.click("#order-form button[type=submit]")
    expect(page.locator("#order-title")).to_have_text("滨江大道排水管网改造")
    expect(page.locator("#contract-amount")).to_have_text("¥2,380,000.00")
    expect(page.locator("#tax-rate")).to_have_text("9%")
    order_url = page.url

    take(page, "start_quotation")
    expect(page.locator("#order-state")).to_contain_text("Quoting")
    take(page, "submit", comment="报价已完成，请审批")
    expect(page.locator("#order-state")).to_contain_text("Pending approval")
    # The PM may not approve: the button is not there.
    expect(page.locator("details.eoms-action[data-transition='approve']")).to_have_count(0)
    logout(page)

    login(page, world.approver.username)
    page.goto(order_url)
    # Approve and reject are not order buttons: the approver decides the task in My tasks.
    expect(page.locator("details.eoms-action[data-transition='approve']")).to_have_count(0)
    page.click("#decide-link")
    page.locator("details.eoms-action[data-action='approve'] summary").click()
    page.fill("[name=approve-comment]", "同意")
    page.click("details.eoms-action[data-action='approve'] button[type=submit]")
    expect(page).to_have_url(re.compile(r"/approvals/tasks/$"))
    expect(page.locator(".alert-success")).to_contain_text("You approved")
    page.goto(order_url)
    expect(page.locator("#order-state")).to_contain_text("Approved")
    logout(page)

    login(page, world.pm.username)
    page.goto(order_url)
    # Signing without the signed contract is refused with the guard's message, nothing changes.
    take(page, "sign")
    expect(page.locator("#order-actions")).to_contain_text("signed contract")
    expect(page.locator("#order-state")).to_contain_text("Approved")
    page.goto(order_url)
    take(page, "sign", upload=("signed_contract", "合同扫描件.pdf"))
    expect(page.locator("#order-state")).to_contain_text("Signed")

    timeline = page.locator("#order-timeline .list-group-item")
    expect(timeline).to_have_count(5)
    expect(page.locator("#order-timeline")).to_contain_text("报价已完成，请审批")
    expect(page.locator("#order-timeline")).to_contain_text("合同扫描件.pdf")
    page.screenshot(path=str(tmp_path / "signed.png"), full_page=True)

    order = Order.objects.get(title="滨江大道排水管网改造")
    assert order.state == "SIGNED"
    assert list(order.history.values_list("transition", flat=True)) == [
        "create",
        "start_quotation",
        "submit",
        "approve",
        "sign",
    ]
    assert order.attachments.get().original_name == "合同扫描件.pdf"
