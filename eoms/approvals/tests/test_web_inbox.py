"""The approver's pages: My tasks, the task page and its actions, delegations, and the approval
card of the order page; through the test client, asserting exact resulting states."""

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from eoms.accounts.models import Delegation
from eoms.approvals.models import ApprovalDefinition, ApprovalInstance, ApprovalStep, ApprovalTask, TaskState
from eoms.orders.models import Order
from eoms.orders.state import OrderState
from eoms.testing.factories import UserFactory
from eoms.testing.world import PDF, publish_flow

ALWAYS = {"any_of": [[{"field": "amount", "operator": "gte", "value": "0.01"}]]}


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        client.force_login(user)
        return client

    return make


def two_node_flow(gm, *, editable=()) -> dict:
    """The department head (role approver) decides; from 500,000 the general manager too."""
    return {
        "nodes": [
            {
                "type": "approval",
                "id": "dept",
                "name": "Department head",
                "approvers": {"source": "role", "role": "approver"},
                "editable_fields": list(editable),
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
        ],
        "on_reject": "rejected",
    }


@pytest.fixture
def gm(world):
    gm = UserFactory(username="gm1", display_name="General Manager Wang")
    publish_flow(world.admin, two_node_flow(gm), key="big", name="Big orders", priority=10, applies_when=ALWAYS)
    return gm


def pending_task(order, user) -> ApprovalTask:
    return ApprovalTask.objects.get(instance__subject_id=str(order.id), assignee=user, state=TaskState.PENDING)


def act(client, task, action, data):
    prefix = {"add-signer": "signer"}.get(action, action)
    return client.post(
        reverse("approvals:task_action", args=[task.id, action]), {f"{prefix}-{k}": v for k, v in data.items()}
    )


def rows(response) -> list[str]:
    return re.findall(r'<div class="list-group-item[^"]*" data-task="([0-9a-f-]+)">', response.content.decode())


# ------------------------------------------------------------------------------------------------ inbox


def test_counts_in_every_box_are_exact(world, client_for):
    cc_flow = {
        "nodes": [
            {
                "type": "cc",
                "id": "inform",
                "name": "Inform finance",
                "recipients": {"source": "users", "users": [str(world.finance.pk)]},
            },
            {"type": "approval", "id": "review", "name": "Review", "approvers": {"source": "role", "role": "approver"}},
        ]
    }
    publish_flow(world.admin, cc_flow, key="cc", name="With CC", priority=10, applies_when=ALWAYS)
    a = world.order(OrderState.PENDING_APPROVAL, title="Order A")
    world.order(OrderState.PENDING_APPROVAL, title="Order B")
    world.order(OrderState.PENDING_APPROVAL, title="Order C")
    world.decide(a, "approve")
    today = timezone.localdate()
    Delegation.objects.create(
        user=world.approver, deputy=world.engineer, starts_on=today, ends_on=today, created_by=world.approver
    )
    d = world.order(OrderState.PENDING_APPROVAL, title="Order D")

    response = client_for(world.approver).get(reverse("approvals:inbox"))
    assert response.status_code == 200
    assert response.context["counts"] == {"pending": 2, "done": 1, "cc": 0, "unread_cc": 0, "delegated": 1}
    assert len(rows(response)) == 2
    html = response.content.decode()
    assert re.search(r'id="nav-task-count"[^>]*>2</span>', html)
    assert [(t["box"], t["count"]) for t in response.context["tabs"]] == [
        ("pending", 2),
        ("done", 1),
        ("cc", 0),
        ("delegated", 1),
    ]
    deputy = client_for(world.engineer).get(reverse("approvals:inbox"))
    assert deputy.context["counts"]["pending"] == 1
    assert "on behalf of" in deputy.content.decode()
    assert rows(deputy) == [str(pending_task(d, world.engineer).id)]
    finance = client_for(world.finance).get(reverse("approvals:inbox"), {"box": "cc"})
    assert finance.context["counts"]["cc"] == 4
    assert len(rows(finance)) == 4
    done = client_for(world.approver).get(reverse("approvals:inbox"), {"box": "done"})
    assert len(rows(done)) == 1 and "Order A" in done.content.decode()


def test_search_overdue_filter_and_htmx_partial(world, client_for):
    first = world.order(OrderState.PENDING_APPROVAL, title="Pipe renewal")
    second = world.order(OrderState.PENDING_APPROVAL, title="Bridge deck")
    ApprovalStep.objects.filter(instance__subject_id=str(second.id)).update(due_at=timezone.now() - timedelta(hours=2))
    client = client_for(world.approver)
    url = reverse("approvals:inbox")
    assert rows(client.get(url, {"q": "bridge"})) == [str(pending_task(second, world.approver).id)]
    assert rows(client.get(url, {"q": first.number})) == [str(pending_task(first, world.approver).id)]
    overdue = client.get(url, {"overdue": "on"})
    assert rows(overdue) == [str(pending_task(second, world.approver).id)]
    assert "overdue-badge" in overdue.content.decode()
    partial = client.get(url, {"q": "pipe"}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    assert "<html" not in partial.content.decode()
    assert rows(partial) == [str(pending_task(first, world.approver).id)]
    assert "¥1,000,000.00" in partial.content.decode()


def test_bulk_approve_with_one_failing_item_shows_both_results(world, client_for):
    ok_order = world.order(OrderState.PENDING_APPROVAL, title="Will pass")
    gone_order = world.order(OrderState.PENDING_APPROVAL, title="Decided meanwhile")
    ok_task, gone_task = pending_task(ok_order, world.approver), pending_task(gone_order, world.approver)
    world.decide(gone_order, "approve")  # decided elsewhere after the page was shown
    response = client_for(world.approver).post(
        reverse("approvals:bulk"), {"tasks": [str(ok_task.id), str(gone_task.id)], "decision": "approve"}
    )
    assert response.status_code == 200
    results = {r["task_id"]: (r["ok"], r["code"]) for r in response.context["results"]}
    assert results == {str(ok_task.id): (True, "ok"), str(gone_task.id): (False, "approval.task_not_pending")}
    html = response.content.decode()
    assert f'data-task="{ok_task.id}" data-ok="yes"' in html
    assert f'data-task="{gone_task.id}" data-ok="no"' in html
    assert "This task is already Approved; nothing was changed." in html
    assert "Approved 1 of 2 tasks." in html
    ok_order.refresh_from_db()
    assert ok_order.state == OrderState.APPROVED


def test_bulk_reject_needs_a_comment_and_a_bad_id_fails_alone(world, client_for):
    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order, world.approver)
    client = client_for(world.approver)
    refused = client.post(reverse("approvals:bulk"), {"tasks": [str(task.id)], "decision": "reject"})
    assert refused.status_code == 422
    assert "Give a reason: a comment is required to reject." in refused.content.decode()
    order.refresh_from_db()
    assert order.state == OrderState.PENDING_APPROVAL
    response = client.post(
        reverse("approvals:bulk"), {"tasks": [str(task.id), "not-a-task"], "decision": "reject", "comment": "Too high"}
    )
    assert [(r["task_id"], r["ok"]) for r in response.context["results"]] == [
        (str(task.id), True),
        ("not-a-task", False),
    ]
    order.refresh_from_db()
    assert order.state == OrderState.REJECTED


# ------------------------------------------------------------------------------------------------ task page


def test_task_page_shows_the_order_budget_history_and_why(world, client_for, gm):
    parent = world.order(OrderState.QUOTING, amount="2000000.00", title="Main contract")
    world.order(amount="300000.00", parent=parent, title="Earthworks")
    world.walk(parent, "submit")
    dept = pending_task(parent, world.approver)
    page = client_for(world.approver).get(reverse("approvals:task", args=[dept.id]))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<div class="datagrid-content" id="task-reason">has the role Approver</div>' in html
    assert 'id="budget-amount">¥2,000,000.00</div>' in html
    assert 'id="budget-children">¥300,000.00 (1)</div>' in html
    assert 'id="budget-room">¥1,700,000.00</div>' in html
    assert 'id="task-actions"' in html
    assert [(s["node_id"], s["status"]) for s in page.context["route"]] == [("dept", "active"), ("gm", "upcoming")]
    assert [h.transition for h in page.context["order_timeline"]] == ["submit", "start_quotation", "create"]

    act(client_for(world.approver), dept, "approve", {"comment": "Fine"})
    task = pending_task(parent, gm)
    gm_page = client_for(gm).get(reverse("approvals:task", args=[task.id]))
    html = gm_page.content.decode()
    assert '<div class="datagrid-content" id="step-reason">contract amount ≥ 500,000 → GM</div>' in html
    assert '<div class="datagrid-content" id="task-reason">named in the flow</div>' in html
    assert [(s["node_id"], s["status"]) for s in gm_page.context["route"]] == [("dept", "approved"), ("gm", "active")]
    assert "Fine" in html  # the department head's comment on the timeline
    # The flow's drawing, with the named user's name and the active node filled.
    diagram = re.search(r'<div class="card-body[^"]*" id="flow-diagram">(.*?)</div>', html, re.S).group(1)
    assert 'class="eoms-flow-diagram"' in diagram and "General Manager Wang" in diagram


def test_approve_with_an_edit_the_node_allows(world, client_for):
    gm = UserFactory(username="gm1")
    publish_flow(
        world.admin,
        two_node_flow(gm, editable=["contract_amount"]),
        key="big",
        name="Big orders",
        priority=10,
        applies_when=ALWAYS,
    )
    order = world.order(OrderState.PENDING_APPROVAL, amount="450000.00")
    task = pending_task(order, world.approver)
    client = client_for(world.approver)
    assert (
        'name="approve-edit_contract_amount"' in client.get(reverse("approvals:task", args=[task.id])).content.decode()
    )
    response = act(client, task, "approve", {"comment": "Corrected", "edit_contract_amount": "440000.00"})
    assert response.status_code == 302 and response["Location"] == reverse("approvals:inbox")
    order.refresh_from_db()
    assert (order.state, str(order.contract_amount)) == (OrderState.APPROVED, "440000.00")


def test_reject_needs_the_comment_then_ends_the_approval(world, client_for):
    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order, world.approver)
    client = client_for(world.approver)
    refused = act(client, task, "reject", {"comment": "  "})
    assert refused.status_code == 422
    assert "This field is required." in refused.content.decode()
    assert refused.context["open_action"] == "reject"
    response = act(client, task, "reject", {"comment": "Price too high"})
    assert response.status_code == 302
    order.refresh_from_db()
    task.refresh_from_db()
    assert (order.state, task.state, task.instance.state) == (OrderState.REJECTED, "rejected", "rejected")
    follow = client.get(reverse("approvals:inbox"))
    assert f"You rejected {order.number} {order.title}." in follow.content.decode()


def test_return_to_an_earlier_node_and_to_the_initiator(world, client_for, gm):
    order = world.order(OrderState.PENDING_APPROVAL, amount="800000.00")
    act(client_for(world.approver), pending_task(order, world.approver), "approve", {})
    gm_task = pending_task(order, gm)
    page = client_for(gm).get(reverse("approvals:task", args=[gm_task.id]))
    assert page.context["forms"]["reject"].fields["return_to"].choices == [
        ("", "End the approval (rejected)"),
        ("dept", "Return to “Department head”"),
        ("initiator", "Return to the initiator for revision"),
    ]
    response = act(client_for(gm), gm_task, "reject", {"comment": "Check the quantities", "return_to": "dept"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.state == OrderState.PENDING_APPROVAL
    again = pending_task(order, world.approver)
    assert again.step.node_id == "dept" and again.step.round == 2
    act(client_for(world.approver), again, "approve", {"comment": "Checked"})
    gm_again = pending_task(order, gm)
    response = act(client_for(gm), gm_again, "reject", {"comment": "Revise the price", "return_to": "initiator"})
    assert response.status_code == 302
    order.refresh_from_db()
    instance = ApprovalInstance.objects.get(subject_id=str(order.id))
    assert (order.state, instance.state, instance.resume_node) == (OrderState.QUOTING, "returned", "gm")
    # The PM sees where a resubmission continues, and resubmits from the order page.
    pm = client_for(world.pm)
    html = pm.get(reverse("orders:detail", args=[order.id])).content.decode()
    assert "Submitting it again continues the approval at “General manager”." in html
    order.refresh_from_db()
    response = pm.post(
        reverse("orders:transition", args=[order.id, "submit"]),
        {"submit-version": order.version, "submit-comment": "Price revised"},
    )
    assert response.status_code == 302
    assert pending_task(order, gm).step.node_id == "gm"
    assert not ApprovalTask.objects.filter(instance=instance, assignee=world.approver, state="pending").exists()


def test_transfer_and_add_signer(world, client_for):
    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order, world.approver)
    client = client_for(world.approver)
    response = act(
        client, task, "add-signer", {"user": world.finance.pk, "position": "before", "comment": "Check cost"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("approvals:inbox")
    task.refresh_from_db()
    assert task.state == TaskState.WAITING
    signer = pending_task(order, world.finance)
    assert signer.kind == "added"
    act(client_for(world.finance), signer, "approve", {"comment": "Cost checked"})
    task.refresh_from_db()
    assert task.state == TaskState.PENDING
    response = act(client, task, "transfer", {"to_user": world.engineer.pk, "comment": "You know this site"})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.state == TaskState.TRANSFERRED
    new = pending_task(order, world.engineer)
    assert new.reason == f"transferred by {world.approver}"
    act(client_for(world.engineer), new, "approve", {})
    order.refresh_from_db()
    assert order.state == OrderState.APPROVED


def test_add_signer_refused_for_the_initiator_shows_the_reason(world, client_for):
    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order, world.approver)
    # The initiator is not offered; posting them anyway is the service's 422, shown on the page.
    form = client_for(world.approver).get(reverse("approvals:task", args=[task.id])).context["forms"]["signer"]
    assert world.pm.pk not in [u.pk for u in form.fields["user"].queryset]
    response = act(client_for(world.approver), task, "add-signer", {"user": world.pm.pk, "position": "after"})
    assert response.status_code == 422
    task.refresh_from_db()
    assert task.state == TaskState.PENDING


def test_comment_with_a_file_and_its_download(world, client_for):
    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order, world.approver)
    client = client_for(world.approver)
    response = client.post(
        reverse("approvals:comment", args=[task.instance_id]),
        {
            "task": str(task.id),
            "note-comment": "Drawings attached",
            "note-file": SimpleUploadedFile("drawing.pdf", PDF, content_type="application/pdf"),
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("approvals:task", args=[task.id])
    page = client.get(reverse("approvals:task", args=[task.id]))
    html = page.content.decode()
    assert "Drawings attached" in html and "drawing.pdf" in html
    attachment = page.context["timeline"][0].attachments.get()
    url = reverse("approvals:attachment", args=[task.instance_id, attachment.id])
    download = client_for(world.pm).get(url)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    assert download["Content-Disposition"] == 'attachment; filename="drawing.pdf"'
    assert client_for(world.outsider).get(url).status_code == 404
    text = SimpleUploadedFile("drawing.pdf", b"not a pdf", content_type="application/pdf")
    rejected = client.post(
        reverse("approvals:comment", args=[task.instance_id]), {"task": str(task.id), "note-file": text}
    )
    assert rejected.status_code == 422


def test_another_users_task_is_hidden_or_read_only(world, client_for):
    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order, world.approver)
    url = reverse("approvals:task", args=[task.id])
    assert client_for(world.outsider).get(url).status_code == 404
    assert act(client_for(world.outsider), task, "approve", {}).status_code == 404
    pm_page = client_for(world.pm).get(url)
    assert pm_page.status_code == 200 and 'id="task-actions"' not in pm_page.content.decode()
    refused = act(client_for(world.pm), task, "approve", {})
    assert refused.status_code == 403
    assert f"This task is {world.approver}&#x27;s, not yours." in refused.content.decode()
    task.refresh_from_db()
    assert task.state == TaskState.PENDING


def test_auditor_reads_and_cannot_act(world, client_for):
    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order, world.approver)
    auditor = client_for(world.auditor)
    page = auditor.get(reverse("approvals:task", args=[task.id]))
    assert page.status_code == 200 and 'id="task-actions"' not in page.content.decode()
    assert act(auditor, task, "approve", {}).status_code == 403
    assert (
        auditor.post(reverse("approvals:bulk"), {"tasks": [str(task.id)], "decision": "approve"}).context["results"][0][
            "ok"
        ]
        is False
    )
    task.refresh_from_db()
    assert task.state == TaskState.PENDING


def test_a_task_no_longer_pending_answers_409_not_500(world, client_for):
    order = world.order(OrderState.PENDING_APPROVAL)
    task = pending_task(order, world.approver)
    client = client_for(world.approver)
    assert act(client, task, "approve", {}).status_code == 302
    again = act(client, task, "approve", {})
    assert again.status_code == 409
    assert "This task is already Approved; nothing was changed." in again.content.decode()


# ------------------------------------------------------------------------------------------------ delegations


def test_delegations_set_list_and_end(world, client_for):
    client = client_for(world.approver)
    today = timezone.localdate()
    response = client.post(
        reverse("approvals:delegations"),
        {"deputy": world.engineer.pk, "starts_on": today, "ends_on": today + timedelta(days=3), "reason": "Site visit"},
    )
    assert response.status_code == 302
    delegation = Delegation.objects.get()
    assert (delegation.user, delegation.deputy, delegation.reason) == (world.approver, world.engineer, "Site visit")
    page = client_for(world.engineer).get(reverse("approvals:delegations"))
    assert [d.pk for d in page.context["for_me"]] == [delegation.pk]
    overlap = client.post(
        reverse("approvals:delegations"),
        {"deputy": world.finance.pk, "starts_on": today, "ends_on": today},
    )
    assert overlap.status_code == 422
    assert "already has a deputy in this period" in overlap.content.decode()
    # The deputy cannot end it; the absent user can.
    client_for(world.engineer).post(reverse("approvals:delegation_end", args=[delegation.pk]))
    delegation.refresh_from_db()
    assert delegation.revoked_at is None
    client.post(reverse("approvals:delegation_end", args=[delegation.pk]))
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None


def test_admin_sets_a_delegation_for_anyone(world, client_for):
    today = timezone.localdate()
    response = client_for(world.admin).post(
        reverse("approvals:delegations"),
        {"user": world.approver.pk, "deputy": world.finance.pk, "starts_on": today, "ends_on": today},
    )
    assert response.status_code == 302
    assert Delegation.objects.get().user == world.approver
    # A non-admin's "user" is ignored: the form has no such field, the delegation is their own.
    client_for(world.pm).post(
        reverse("approvals:delegations"),
        {"user": world.approver.pk, "deputy": world.engineer.pk, "starts_on": today, "ends_on": today},
    )
    assert Delegation.objects.filter(user=world.pm, deputy=world.engineer).count() == 1


# ------------------------------------------------------------------------------------------------ order page


def test_order_in_quoting_shows_who_would_approve(world, client_for, gm):
    order = world.order(OrderState.QUOTING, amount="600000.00")
    response = client_for(world.pm).get(reverse("orders:detail", args=[order.id]))
    simulation = response.context["submit_plan"]["simulation"]
    assert str(simulation["definition"]) == "Big orders v1"
    assert [(s["node_id"], [a["user"] for a in s["approvers"]]) for s in simulation["stages"]] == [
        ("dept", [world.approver]),
        ("gm", [gm]),
    ]
    html = response.content.decode()
    assert 'id="approval-simulation"' in html and "contract amount ≥ 500,000 → GM" in html


def test_submit_with_a_picked_approver(world, client_for):
    picked_flow = {
        "nodes": [
            {"type": "approval", "id": "chosen", "name": "Chosen reviewer", "approvers": {"source": "picked"}},
        ]
    }
    publish_flow(world.admin, picked_flow, key="pick", name="Picked", priority=10, applies_when=ALWAYS)
    order = world.order(OrderState.QUOTING)
    pm = client_for(world.pm)
    page = pm.get(reverse("orders:detail", args=[order.id]))
    assert 'name="submit-picked_chosen"' in page.content.decode()
    missing = pm.post(reverse("orders:transition", args=[order.id, "submit"]), {"submit-version": order.version})
    assert missing.status_code == 422
    order.refresh_from_db()
    assert order.state == OrderState.QUOTING
    response = pm.post(
        reverse("orders:transition", args=[order.id, "submit"]),
        {"submit-version": order.version, "submit-picked_chosen": world.finance.pk},
    )
    assert response.status_code == 302
    task = pending_task(order, world.finance)
    assert task.reason == f"picked by {world.pm} at submission"


def test_submit_without_a_published_flow_shows_the_409(world, client_for):
    ApprovalDefinition.objects.update(status="superseded")
    order = world.order(OrderState.QUOTING)
    pm = client_for(world.pm)
    message = "No published approval flow applies to this order; an administrator must publish one (or a default)."
    assert message in pm.get(reverse("orders:detail", args=[order.id])).content.decode()
    response = pm.post(reverse("orders:transition", args=[order.id, "submit"]), {"submit-version": order.version})
    assert response.status_code == 409
    assert 'data-code="approval.no_flow"' in response.content.decode()
    assert message in response.content.decode()
    order.refresh_from_db()
    assert order.state == OrderState.QUOTING


def test_withdraw_and_nudge_from_the_order_page(world, client_for):
    order = world.order(OrderState.PENDING_APPROVAL)
    pm = client_for(world.pm)
    url = reverse("orders:detail", args=[order.id])
    html = pm.get(url).content.decode()
    assert 'id="withdraw-form"' in html and 'id="nudge-form"' in html
    instance = ApprovalInstance.objects.get(subject_id=str(order.id))
    nudged = pm.post(reverse("approvals:nudge", args=[instance.id]), {"next": url}, follow=True)
    assert f"Reminded: {world.approver}." in nudged.content.decode()
    again = pm.post(reverse("approvals:nudge", args=[instance.id]), {"next": url}, follow=True)
    assert "nudge again after an hour" in again.content.decode()
    # Another user may neither withdraw nor nudge: the buttons are not there.
    assert 'id="withdraw-form"' not in client_for(world.approver).get(url).content.decode()
    response = pm.post(reverse("approvals:withdraw", args=[instance.id]), {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == url
    order.refresh_from_db()
    instance.refresh_from_db()
    assert (order.state, instance.state) == (OrderState.QUOTING, "withdrawn")
    assert not ApprovalTask.objects.filter(instance=instance, state="pending").exists()


def test_after_approval_the_order_page_shows_the_approval_timeline(world, client_for):
    order = world.order(OrderState.APPROVED)
    html = client_for(world.pm).get(reverse("orders:detail", args=[order.id])).content.decode()
    assert 'id="approval-timeline"' in html
    kinds = re.findall(r'<div class="list-group-item" data-action="([a-z_]+)">', html)
    assert kinds == ["complete", "approve", "submit"]
    assert Order.objects.get(pk=order.pk).state == OrderState.APPROVED


def test_bulk_decide_reports_a_malformed_task_id_as_one_failed_item(world):
    from eoms.approvals.services import bulk_decide

    assert bulk_decide(actor=world.approver, task_ids=["not-a-task"], decision="approve") == [
        {"task_id": "not-a-task", "ok": False, "code": "approval.task_not_found", "detail": "No such approval task."}
    ]


def test_nav_links_my_tasks_for_everyone_and_the_flows_for_who_may_read_them(world, client_for):
    flows = reverse("approvals:definitions")
    for user, sees_flows in ((world.approver, True), (world.admin, True), (world.engineer, False)):
        html = client_for(user).get(reverse("dashboard")).content.decode()
        assert f'href="{reverse("approvals:inbox")}" id="nav-my-tasks"' in html
        assert (f'href="{flows}" id="nav-approval-flows"' in html) is sees_flows
    assert 'id="nav-task-count"' not in client_for(world.engineer).get(reverse("dashboard")).content.decode()


def test_inbox_queries_do_not_grow_with_its_rows(world, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(world.approver)
    url = reverse("approvals:inbox")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    world.order(OrderState.PENDING_APPROVAL)
    one = queries()
    for _ in range(4):
        world.order(OrderState.PENDING_APPROVAL)
    assert queries() == one


def test_opening_a_copy_marks_it_read(world, client_for):
    """A CC recipient opening the copy reads it (once); the initiator's timeline is unchanged."""
    from eoms.approvals.models import ApprovalTask, TaskKind, TaskState

    cc_flow = {
        "nodes": [
            {
                "type": "cc",
                "id": "inform",
                "name": "Inform finance",
                "recipients": {"source": "users", "users": [str(world.finance.pk)]},
            },
            {
                "type": "approval",
                "id": "review",
                "name": "Review",
                "approvers": {"source": "role", "role": "approver"},
                "mode": "any",
            },
        ],
        "on_reject": "rejected",
    }
    publish_flow(world.admin, cc_flow, key="cc-flow", name="With a copy", priority=1, applies_when=ALWAYS)
    order = world.order(OrderState.PENDING_APPROVAL)
    copy = ApprovalTask.objects.get(instance__subject_id=str(order.id), kind=TaskKind.CC)
    assert copy.state == TaskState.CC
    # Someone else looking at it (the PM sees the order) reads nothing.
    assert client_for(world.pm).get(f"/approvals/tasks/{copy.id}/").status_code == 200
    copy.refresh_from_db()
    assert copy.state == TaskState.CC
    response = client_for(world.finance).get(f"/approvals/tasks/{copy.id}/")
    assert response.status_code == 200
    copy.refresh_from_db()
    assert (copy.state, copy.version) == (TaskState.READ, 2)
    assert client_for(world.finance).get(f"/approvals/tasks/{copy.id}/").status_code == 200
    copy.refresh_from_db()
    assert copy.version == 2
