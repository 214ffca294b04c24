"""An administrator builds an approval flow from nothing in the no-code editor, watches the live
diagram and the validation messages follow each change, publishes it and simulates an order."""

import re

import pytest
from playwright.sync_api import expect

from eoms.accounts.roles import Role
from eoms.approvals.models import ApprovalDefinition
from eoms.orders.state import OrderState
from eoms.testing.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pass-word-123"  # eoms.testing.factories.UserFactory


def login(page, username):
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/$"))


def test_admin_builds_publishes_and_simulates_a_flow(page, world, tmp_path):
    gm = UserFactory(username="gm", display_name="General Manager", roles=[Role.FINANCE])
    order = world.order(OrderState.QUOTING, amount="800000.00", title="Riverside drainage works")
    login(page, world.admin.username)

    page.goto("/approvals/flows/")
    page.click("#new-flow")
    expect(page.locator("#flow-nodes")).to_contain_text("No node yet: add an approval node.")
    page.fill("#id_name", "Large orders")
    page.fill("#id_key", "large-orders")
    problems = page.locator("#flow-problems")
    diagram = page.locator("#flow-diagram")

    # An approval node whose approvers are everyone with the role "approver".
    page.locator("#flow-nodes > .flow-list > .flow-add-end .add-approval").click()
    review = page.locator('.flow-node[data-node-id="approval_1"]')
    review.locator(".node-name").fill("Review")
    expect(problems).to_contain_text("Node “Review”: choose a role.")
    expect(review).to_have_class(re.compile(r"\bhas-problem\b"))
    review.locator(".role-select").select_option("approver")
    expect(page.locator("#flow-ready")).to_be_visible()
    expect(review).not_to_have_class(re.compile(r"\bhas-problem\b"))
    expect(diagram.locator('g[data-node="approval_1"]')).to_contain_text("Role: Approver")

    # A branch node: its first branch has no condition yet, which the preview says at once.
    page.locator("#flow-nodes > .flow-list > .flow-add-end .add-branch").click()
    large = page.locator('.flow-branch[data-node-id="path_1"]')
    expect(problems).to_contain_text("Branch “Condition 1”: give it a condition.")
    expect(large).to_have_class(re.compile(r"\bhas-problem\b"))
    large.locator(".branch-name").fill("Large")
    large.locator(".add-rule").click()
    large.locator(".rule-field").select_option("amount")
    large.locator(".rule-operator").select_option("gte")
    large.locator(".flow-value").fill("500000")
    expect(diagram.locator('g[data-node="path_1"]')).to_contain_text("contract amount ≥ 500,000")

    # In that branch, the general manager approves.
    large.locator(".flow-add-end .add-approval").click()
    gm_card = page.locator('.flow-node[data-node-id="approval_2"]')
    gm_card.locator(".node-name").fill("GM")
    gm_card.locator(".source-select").select_option("users")
    gm_card.locator(".add-user").select_option(str(gm.pk))
    expect(gm_card.locator(".user-chip")).to_have_text(re.compile("General Manager"))
    expect(diagram.locator('g[data-node="approval_2"]')).to_contain_text("General Manager")

    # Without a default branch the flow cannot be published; the message names the branch node.
    otherwise = page.locator('.flow-branch[data-node-id="path_2"]')
    otherwise.locator(".default-check").uncheck()
    expect(problems).to_contain_text("exactly one branch must be the default")
    expect(page.locator('.flow-node[data-node-id="branch_1"]')).to_have_class(re.compile(r"\bhas-problem\b"))
    page.screenshot(path=str(tmp_path / "editor-problem.png"), full_page=True)
    otherwise = page.locator('.flow-branch[data-node-id="path_2"]')
    otherwise.locator(".default-check").check()
    expect(page.locator("#flow-ready")).to_be_visible()
    expect(otherwise).to_contain_text("No node: the flow passes straight on.")

    # A CC node added and removed again leaves the flow as it was.
    page.locator("#flow-nodes > .flow-list > .flow-add-end .add-cc").click()
    expect(diagram.locator('g[data-node="cc_1"]')).to_have_count(1)
    page.locator('.flow-node[data-node-id="cc_1"] .remove').first.click()
    expect(diagram.locator('g[data-node="cc_1"]')).to_have_count(0)
    expect(page.locator("#flow-ready")).to_be_visible()

    page.click("#publish-flow")
    expect(page.locator(".alert-success").first).to_have_text("Published revision 1 of Large orders.")
    expect(page.locator("h2 .flow-status")).to_have_text("Published")
    expect(page.locator('#flow-diagram g[data-node="approval_2"]')).to_contain_text("GM")
    definition = ApprovalDefinition.objects.get(key="large-orders")
    assert definition.status == "published"
    assert [n["id"] for n in definition.document["nodes"]] == ["approval_1", "branch_1"]
    branches = definition.document["nodes"][1]["branches"]
    assert branches[0]["when"] == {"any_of": [[{"field": "amount", "operator": "gte", "value": "500000"}]]}
    assert [n["approvers"]["users"] for n in branches[0]["nodes"]] == [[str(gm.pk)]]
    assert (branches[1]["default"], branches[1]["nodes"]) == (True, [])

    # Who would approve the order on this flow, and why.
    page.click("#simulate-flow")
    page.fill("#id_q", "Riverside")
    page.click("#subject-search button[type=submit]")
    page.click(f'#subject-results a[data-subject="{order.pk}"]')
    stages = page.locator("#stages .flow-stage")
    expect(stages).to_have_count(2)
    expect(stages.nth(0).locator(".stage-name")).to_have_text("Review")
    expect(stages.nth(0).locator(".stage-approver")).to_have_attribute("data-user", "approver1")
    expect(stages.nth(1).locator(".stage-reason")).to_have_text("contract amount ≥ 500,000 → Large")
    expect(stages.nth(1).locator(".stage-approver")).to_have_attribute("data-user", "gm")
    page.screenshot(path=str(tmp_path / "simulation.png"), full_page=True)


def test_without_javascript_the_flow_is_saved_from_its_json(browser, live_server, world):
    context = browser.new_context(locale="en-US", base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        login(page, world.admin.username)
        page.goto("/approvals/flows/new/")
        expect(page.locator("#flow-json")).to_have_attribute("open", "")
        page.fill("#id_name", "Typed by hand")
        page.fill("#id_key", "by-hand")
        page.fill(
            "#id_document",
            '{"nodes": [{"type": "approval", "id": "check", "name": "Check", '
            '"approvers": {"source": "role", "role": "approver"}}]}',
        )
        page.click("#save-flow")
        expect(page.locator(".alert-success").first).to_have_text("Saved draft revision 1 of Typed by hand.")
        expect(page.locator("#flow-ready")).to_be_visible()
        expect(page.locator('#flow-diagram g[data-node="check"]')).to_contain_text("Role: Approver")
        assert ApprovalDefinition.objects.get(key="by-hand").document["nodes"][0]["name"] == "Check"
    finally:
        context.close()
