"""An order through a two-node approval flow in a real browser: the PM submits, the department
head decides on a phone from My tasks, the general manager sends it back once, and the order page
ends with the approval's timeline."""

import re

import pytest
from playwright.sync_api import expect

from eoms.approvals.models import ApprovalInstance
from eoms.orders.models import Order
from eoms.orders.state import OrderState
from eoms.testing.factories import UserFactory
from eoms.testing.world import publish_flow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pass-word-123"  # eoms.testing.factories.UserFactory
PHONE = {"width": 390, "height": 844}


def two_node_flow(gm) -> dict:
    return {
        "nodes": [
            {
                "type": "approval",
                "id": "dept",
                "name": "Department head",
                "approvers": {"source": "role", "role": "approver"},
            },
            {
                "type": "branch",
                "id": "size",
                "name": "By amount",
                "branches": [
                    {
                        "id": "big",
                        "name": "GM",
                        "when": {"any_of": [[{"field": "amount", "operator": "gte", "value": "500000"}]]},
                        "nodes": [
                            {
                                "type": "approval",
                                "id": "gm",
                                "name": "General manager",
                                "approvers": {"source": "users", "users": [str(gm.pk)]},
                            }
                        ],
                    },
                    {"id": "small", "name": "Small", "default": True, "nodes": []},
                ],
            },
        ]
    }


@pytest.fixture
def phone(browser, live_server):
    context = browser.new_context(
        locale="en-US", base_url=live_server.url, viewport=PHONE, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def login(page, username):
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/$"))


def logout(page):
    page.context.clear_cookies()


def open_my_task(page, subject, *, screenshot=None):
    """From the phone's "My tasks" button to the task of `subject`."""
    page.click("#phone-my-tasks")
    expect(page).to_have_url(re.compile(r"/approvals/tasks/$"))
    if screenshot:
        no_horizontal_scroll(page)
        page.screenshot(path=screenshot, full_page=True)
    page.locator("#task-list a.task-link", has_text=subject).click()
    expect(page.locator("#task-subject")).to_contain_text(subject)


def decide(page, action, *, comment="", return_to=None):
    box = page.locator(f"details.eoms-action[data-action='{action}']")
    box.locator("summary").click()
    if return_to:
        box.locator("select[name=reject-return_to]").select_option(label=return_to)
    if comment:
        box.locator("textarea[name$=comment]").fill(comment)
    box.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/approvals/tasks/$"))


def no_horizontal_scroll(page):
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_two_node_approval_on_a_phone_with_a_return(page, phone, world, tmp_path):
    gm = UserFactory(username="gm1", display_name="王总")
    publish_flow(
        world.admin,
        two_node_flow(gm),
        key="big",
        name="Large orders",
        priority=10,
        applies_when={"any_of": [[{"field": "amount", "operator": "gte", "value": "0.01"}]]},
    )
    order = world.order(OrderState.QUOTING, amount="1200000.00", title="滨江大道排水管网改造")
    order_url = f"/orders/{order.id}/"

    # The PM sees who would approve, then submits.
    login(page, world.pm.username)
    page.goto(order_url)
    simulation = page.locator("#approval-simulation")
    expect(simulation).to_contain_text("Department head")
    expect(simulation).to_contain_text("General manager")
    expect(simulation).to_contain_text("王总")
    action = page.locator("details.eoms-action[data-transition='submit']")
    action.locator("summary").click()
    action.locator("[name$=comment]").fill("报价已完成，请审批")
    action.locator("button[type=submit]").click()
    expect(page.locator("#order-state")).to_contain_text("Pending approval")
    expect(page.locator("#approval-pending")).to_contain_text(str(world.approver))

    # The department head, on a phone: My tasks shows one task; the task says why it came to them.
    login(phone, world.approver.username)
    expect(phone.locator("#phone-my-tasks")).to_contain_text("1")
    open_my_task(phone, order.number, screenshot=str(tmp_path / "inbox-phone.png"))
    expect(phone.locator("#task-reason")).to_have_text("has the role Approver")
    expect(phone.locator("#budget-amount")).to_have_text("¥1,200,000.00")
    no_horizontal_scroll(phone)
    phone.screenshot(path=str(tmp_path / "task-phone.png"), full_page=True)
    decide(phone, "approve", comment="同意")
    expect(phone.locator(".alert-success")).to_contain_text("You approved")
    expect(phone.locator("#no-tasks")).to_be_visible()
    logout(phone)

    # The general manager sends it back to the department head.
    login(phone, gm.username)
    open_my_task(phone, order.number)
    expect(phone.locator("#step-reason")).to_have_text("contract amount ≥ 500,000 → GM")
    expect(phone.locator("#task-reason")).to_have_text("named in the flow")
    decide(phone, "reject", comment="请核对工程量", return_to="Return to “Department head”")
    expect(phone.locator(".alert-success")).to_contain_text("You returned")
    logout(phone)

    # Round two: the department head approves again, then the general manager.
    login(phone, world.approver.username)
    open_my_task(phone, order.number)
    expect(phone.locator("#approval-timeline")).to_contain_text("请核对工程量")
    decide(phone, "approve", comment="已核对")
    logout(phone)
    login(phone, gm.username)
    open_my_task(phone, order.number)
    decide(phone, "approve", comment="同意签约")
    logout(phone)

    # The order is approved; its page shows the approval's timeline next to the history.
    page.goto(order_url)
    expect(page.locator("#order-state")).to_contain_text("Approved")
    expect(page.locator("#approval-state")).to_have_text("Approved")
    kinds = page.locator("#approval-timeline [data-action]")
    expect(kinds).to_have_count(6)
    assert [kinds.nth(i).get_attribute("data-action") for i in range(6)] == [
        "complete",
        "approve",
        "approve",
        "return",
        "approve",
        "submit",
    ]
    expect(page.locator("#approval-timeline")).to_contain_text("请核对工程量")
    page.screenshot(path=str(tmp_path / "order-approved.png"), full_page=True)

    assert Order.objects.get(pk=order.pk).state == OrderState.APPROVED
    assert ApprovalInstance.objects.get(subject_id=str(order.id)).state == "approved"
