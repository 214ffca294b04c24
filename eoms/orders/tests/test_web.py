import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from eoms.accounts.roles import Role
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.orders import services, state
from eoms.orders.attachments import inspect_upload
from eoms.orders.models import Attachment, Order
from eoms.orders.state import OrderState, Transition
from eoms.testing.factories import UserFactory
from eoms.testing.matrix import REQUEST_EVENTS
from eoms.testing.world import PDF, PNG

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def client_for():
    """A test client signed in as `user`, asking for English pages."""

    def make(user) -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        client.force_login(user)
        return client

    return make


def _numbers(response) -> list[str]:
    return re.findall(r'<tr class="[^"]*" data-order="([^"]+)"', response.content.decode())


def _actions(response) -> list[str]:
    return [a["transition"].name for a in response.context["actions"]]


def _post_action(client, order, name, *, version=None, comment="", file=None, kind=None):
    data = {f"{name}-version": order.version if version is None else version, f"{name}-comment": comment}
    if file is not None:
        data[f"{name}-file"] = file
        data[f"{name}-kind"] = kind or "other"
    return client.post(reverse("orders:transition", args=[order.id, name]), data)


def _pdf(name="contract.pdf"):
    return SimpleUploadedFile(name, PDF, content_type="application/pdf")


def _other_order(world, title="Other project order"):
    return services.create_order(
        actor=world.outsider, project=world.other_project, title=title, contract_amount=Decimal("5000.00")
    )


def _make_overdue(world, order):
    return services.update_order(
        actor=world.pm, order_id=order.id, changes={"stage_deadline": timezone.now() - timedelta(days=2)}
    )


# ------------------------------------------------------------------------------------------------ dashboard


def test_dashboard_counts_amounts_mine_and_overdue_are_exact(world, client_for):
    a = world.order(amount="100.00")
    world.order(amount="200.50")
    world.order(OrderState.QUOTING, amount="300.00")
    world.order(OrderState.PENDING_APPROVAL, amount="400.00")
    _make_overdue(world, a)
    _other_order(world)

    response = client_for(world.pm).get(reverse("dashboard"))

    assert response.status_code == 200
    counts = {row["state"]: (row["count"], row["amount"]) for row in response.context["by_state"]}
    assert counts[OrderState.INITIATED] == (2, Decimal("300.50"))
    assert counts[OrderState.QUOTING] == (1, Decimal("300.00"))
    assert counts[OrderState.PENDING_APPROVAL] == (1, Decimal("400.00"))
    assert sum(c for c, _ in counts.values()) == 4
    assert response.context["total_count"] == 4
    assert response.context["total_amount"] == Decimal("1000.50")
    # The approver owns the stage of the order pending approval; the PM owns the other three.
    assert response.context["mine_count"] == 3
    assert response.context["overdue_count"] == 1
    assert [o.number for o in response.context["overdue"]] == [a.number]
    html = response.content.decode()
    assert '<div class="h1 mb-0" id="total-count">4</div>' in html
    assert '<div class="h2 mb-0 money text-start" id="total-amount">¥1,000.50</div>' in html
    row = re.search(r'<tr data-state="INITIATED">.*?</tr>', html, re.S).group(0)
    assert '<td class="text-end count">2</td>' in row and "¥300.50" in row
    chart = response.context["chart"]
    assert chart["states"] == list(OrderState.values)
    assert chart["counts"][chart["states"].index(OrderState.QUOTING)] == 1
    assert 'id="state-chart-data" type="application/json"' in html
    assert 'data-echarts-source="state-chart-data"' in html
    assert "/static/vendor/echarts/echarts.min.js" in html
    assert "?state=QUOTING" in html


def test_dashboard_of_an_outsider_counts_only_their_project(world, client_for):
    world.order()
    world.order(OrderState.QUOTING)
    _other_order(world)
    response = client_for(world.outsider).get(reverse("dashboard"))
    assert response.context["total_count"] == 1
    assert response.context["mine_count"] == 1


def test_pages_need_sign_in(world):
    order = world.order()
    for url in (
        reverse("dashboard"),
        reverse("orders:list"),
        reverse("orders:detail", args=[order.id]),
        reverse("orders:lifecycle"),
        reverse("orders:create"),
    ):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


# ------------------------------------------------------------------------------------------------ list


def test_list_filters_by_state_overdue_and_search(world, client_for):
    initiated = world.order(title="Pipe renewal north")
    quoting = world.order(OrderState.QUOTING, title="Bridge deck repair")
    pending = world.order(OrderState.PENDING_APPROVAL, title="Street lighting")
    _make_overdue(world, initiated)
    _other_order(world, title="Bridge elsewhere")
    client = client_for(world.pm)
    url = reverse("orders:list")

    assert sorted(_numbers(client.get(url))) == sorted([initiated.number, quoting.number, pending.number])
    assert _numbers(client.get(url, {"state": "QUOTING"})) == [quoting.number]
    assert sorted(_numbers(client.get(url, {"state": ["QUOTING", "PENDING_APPROVAL"]}))) == sorted(
        [quoting.number, pending.number]
    )
    assert _numbers(client.get(url, {"overdue": "yes"})) == [initiated.number]
    assert sorted(_numbers(client.get(url, {"overdue": "no"}))) == sorted([quoting.number, pending.number])
    assert _numbers(client.get(url, {"q": "bridge"})) == [quoting.number]
    assert _numbers(client.get(url, {"q": pending.number})) == [pending.number]
    assert _numbers(client.get(url, {"amount_min": "1,000,000", "state": "QUOTING"})) == [quoting.number]
    assert _numbers(client.get(url, {"ordering": "number"})) == sorted(
        [initiated.number, quoting.number, pending.number]
    )
    overdue_row = re.search(
        rf'<tr class="table-danger" data-order="{initiated.number}">.*?</tr>', client.get(url).content.decode(), re.S
    )
    assert overdue_row and "Overdue" in overdue_row.group(0)


def test_list_never_shows_another_projects_orders(world, client_for):
    mine = [world.order(), world.order(OrderState.QUOTING)]
    theirs = _other_order(world)
    client = client_for(world.outsider)
    url = reverse("orders:list")
    for params in ({}, {"q": mine[0].number}, {"project": str(world.project.id)}, {"state": "QUOTING"}):
        assert _numbers(client.get(url, params)) in ([theirs.number], [])
    assert _numbers(client.get(url)) == [theirs.number]
    assert client.get(reverse("orders:detail", args=[mine[0].id])).status_code == 404
    # The project filter offers only projects in scope.
    choices = dict(client.get(url).context["form"].fields["project"].choices)
    assert str(world.project.id) not in choices and str(world.other_project.id) in choices


def test_list_money_badges_and_htmx_partial(world, client_for):
    order = world.order(OrderState.QUOTING, amount="1234567.80")
    client = client_for(world.pm)
    html = client.get(reverse("orders:list")).content.decode()
    assert "¥1,234,567.80" in html
    assert '<span class="badge state-badge state-QUOTING" data-state="QUOTING">Quoting</span>' in html
    assert 'hx-get="/orders/"' in html and 'hx-target="#order-results"' in html

    partial = client.get(reverse("orders:list"), {"state": "QUOTING"}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    body = partial.content.decode()
    assert "<html" not in body and 'id="order-table"' in body
    assert _numbers(partial) == [order.number]
    assert "HX-Request" in partial["Vary"]


def test_list_bad_filter_input_is_reported_and_ignored(world, client_for):
    order = world.order()
    response = client_for(world.pm).get(
        reverse("orders:list"), {"amount_min": "lots", "created_from": "2026-13-45", "state": "NOPE", "page": "x"}
    )
    assert response.status_code == 200
    assert _numbers(response) == [order.number]
    assert set(response.context["form"].errors) == {"amount_min", "created_from", "state"}
    assert 'id="filter-errors"' in response.content.decode()


def test_list_pagination(world, client_for):
    numbers = [world.order(amount=f"{100 + i}.00").number for i in range(26)]
    client = client_for(world.pm)
    first = client.get(reverse("orders:list"), {"ordering": "number"})
    assert _numbers(first) == sorted(numbers)[:25]
    assert "Page 1 of 2" in first.content.decode()
    assert "ordering=number&amp;page=2" in first.content.decode()
    second = client.get(reverse("orders:list"), {"ordering": "number", "page": "2"})
    assert _numbers(second) == sorted(numbers)[25:]


# ------------------------------------------------------------------------------------------------ detail


def test_detail_shows_fields_amounts_tree_timeline_and_diagram(world, client_for):
    parent = world.order(OrderState.QUOTING, amount="1090000.00")
    child = world.order(amount="300000.00", parent=parent, title="Subcontract earthworks")
    response = client_for(world.pm).get(reverse("orders:detail", args=[parent.id]))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<div class="datagrid-content money text-start" id="contract-amount">¥1,090,000.00</div>' in html
    assert '<div class="datagrid-content money text-start" id="tax-amount">¥90,000.00</div>' in html
    assert '<div class="datagrid-content money text-start" id="net-amount">¥1,000,000.00</div>' in html
    assert [row["order"].number for row in response.context["tree"]] == [parent.number, child.number]
    assert f'data-order="{child.number}"' in html and "tree-depth-1" in html
    assert [h.transition for h in response.context["timeline"]] == ["start_quotation", "create"]
    assert 'class="state current" data-state="QUOTING"' in html
    child_page = client_for(world.pm).get(reverse("orders:detail", args=[child.id])).content.decode()
    assert f'href="/orders/{parent.id}/">{parent.number}</a>' in child_page


@pytest.mark.parametrize(
    ("order_state", "role", "expected"),
    [
        (OrderState.INITIATED, "project_manager", ["start_quotation", "cancel"]),
        (OrderState.INITIATED, "approver", []),
        (OrderState.INITIATED, "auditor", []),
        (OrderState.INITIATED, "admin", ["start_quotation", "cancel"]),
        # Approve and reject are the approval engine's: the approver decides the task (see below).
        (OrderState.PENDING_APPROVAL, "approver", []),
        (OrderState.PENDING_APPROVAL, "project_manager", ["cancel"]),
        (OrderState.PENDING_APPROVAL, "auditor", []),
        (OrderState.SIGNED, "field_engineer", ["start_execution"]),
        (OrderState.SIGNED, "project_manager", ["start_execution"]),
        (OrderState.SIGNED, "admin", ["cancel"]),
    ],
)
def test_detail_shows_only_the_allowed_buttons(world, client_for, order_state, role, expected):
    order = world.order(order_state)
    response = client_for(world.by_role[role]).get(reverse("orders:detail", args=[order.id]))
    assert response.status_code == 200
    assert _actions(response) == expected
    html = response.content.decode()
    posted = re.findall(rf'action="/orders/{order.id}/actions/([a-z_]+)/"', html)
    assert posted == expected
    if not expected:
        assert 'id="order-actions"' not in html


def test_the_approver_gets_a_decide_link_to_their_task_not_buttons(world, client_for):
    from eoms.approvals.models import ApprovalTask

    order = world.order(OrderState.PENDING_APPROVAL)
    task = ApprovalTask.objects.get(instance__subject_id=str(order.id), assignee=world.approver)
    html = client_for(world.approver).get(reverse("orders:detail", args=[order.id])).content.decode()
    assert f'<a class="btn btn-primary" href="/approvals/tasks/{task.id}/" id="decide-link">Decide</a>' in html
    assert "/actions/approve/" not in html and "/actions/reject/" not in html
    # The PM sees who is deciding, but no Decide link.
    pm_page = client_for(world.pm).get(reverse("orders:detail", args=[order.id]))
    assert 'id="decide-link"' not in pm_page.content.decode()
    assert [t.assignee for t in pm_page.context["approval"]["pending"]] == [world.approver]


def test_approve_and_reject_posted_to_the_order_are_refused(world, client_for):
    order = world.order(OrderState.PENDING_APPROVAL)
    for name in ("approve", "reject"):
        response = _post_action(client_for(world.approver), order, name, comment="ok")
        assert response.status_code == 403
        assert (
            "Orders are approved or rejected through their approval flow: decide the task in My tasks."
            in response.content.decode()
        )
    order.refresh_from_db()
    assert order.state == OrderState.PENDING_APPROVAL


def test_auditor_post_is_forbidden_and_changes_nothing(world, client_for):
    order = world.order()
    entries, messages = AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count(), OutboxMessage.objects.count()
    response = _post_action(client_for(world.auditor), order, "start_quotation")
    assert response.status_code == 403
    assert "You may not do this on order" in response.content.decode()
    fresh = Order.objects.get(pk=order.pk)
    assert (fresh.state, fresh.version) == (OrderState.INITIATED, order.version)
    assert (AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count(), OutboxMessage.objects.count()) == (
        entries,
        messages,
    )


def test_walk_an_order_to_signed_through_the_pages(world, client_for):
    order = world.order()
    pm, approver = client_for(world.pm), client_for(world.approver)
    for name in ("start_quotation", "submit"):
        order.refresh_from_db()
        response = _post_action(pm, order, name)
        assert response.status_code == 302, response.content.decode()[:2000]
        assert response["Location"] == reverse("orders:detail", args=[order.id])
    # The approver decides the task from the order's "Decide" link.
    page = approver.get(reverse("orders:detail", args=[order.id]))
    task = page.context["approval"]["my_task"]
    response = approver.post(
        reverse("approvals:task_action", args=[task.id, "approve"]), {"approve-comment": "OK by me"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("approvals:inbox")
    order.refresh_from_db()
    assert order.state == OrderState.APPROVED
    response = _post_action(pm, order, "sign", file=_pdf(), kind="signed_contract")
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.state == OrderState.SIGNED
    assert list(order.history.values_list("transition", flat=True)) == [
        "create",
        "start_quotation",
        "submit",
        "approve",
        "sign",
    ]
    assert order.history.get(transition="approve").comment == "OK by me"
    attachment = Attachment.objects.get(order=order)
    assert (attachment.kind, attachment.history.transition, attachment.original_name) == (
        "signed_contract",
        "sign",
        "contract.pdf",
    )
    page = pm.get(reverse("orders:detail", args=[order.id]))
    html = page.content.decode()
    assert f"Sign: order {order.number} is now “Signed”." in html
    download_url = reverse("orders:attachment", args=[order.id, attachment.id])
    assert f'href="{download_url}"' in html
    download = client_for(world.auditor).get(download_url)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    assert download["Content-Type"] == "application/pdf"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Disposition"] == 'attachment; filename="contract.pdf"'
    assert client_for(world.outsider).get(download_url).status_code == 404


def test_sign_without_the_contract_shows_the_guard_message(world, client_for):
    order = world.order(OrderState.APPROVED)
    response = _post_action(client_for(world.pm), order, "sign")
    assert response.status_code == 409
    html = response.content.decode()
    assert "A condition of this action is not met" in html
    assert "Attach the signed contract (kind: signed contract) to sign the order." in html
    assert 'data-code="order.signed_contract_required"' in html
    order.refresh_from_db()
    assert order.state == OrderState.APPROVED
    assert not Attachment.objects.filter(order=order).exists()


def test_a_rejected_file_with_a_transition_changes_nothing(world, client_for):
    order = world.order(OrderState.APPROVED)
    text = SimpleUploadedFile("contract.pdf", b"just text, not a pdf", content_type="application/pdf")
    response = _post_action(client_for(world.pm), order, "sign", file=text, kind="signed_contract")
    assert response.status_code == 422
    assert "The file was rejected" in response.content.decode()
    order.refresh_from_db()
    assert order.state == OrderState.APPROVED


def test_stale_version_shows_the_conflict_message(world, client_for):
    order = world.order()
    client = client_for(world.pm)
    seen = order.version
    services.update_order(actor=world.pm, order_id=order.id, changes={"title": "Changed meanwhile"})
    response = _post_action(client, order, "start_quotation", version=seen)
    assert response.status_code == 409
    html = response.content.decode()
    assert f"Someone else changed order {order.number} while you were looking at it." in html
    order.refresh_from_db()
    assert order.state == OrderState.INITIATED
    # The page now offers the actions at the current version.
    assert f'name="start_quotation-version" value="{order.version}"' in html


def test_comment_is_required_where_the_transition_says_so(world, client_for):
    order = world.order(OrderState.QUOTING)
    response = _post_action(client_for(world.pm), order, "cancel", comment="   ")
    assert response.status_code == 422
    assert "This field is required." in response.content.decode()
    assert [a["transition"].name for a in response.context["actions"] if a["open"]] == ["cancel"]
    order.refresh_from_db()
    assert order.state == OrderState.QUOTING


def test_a_transition_not_possible_now_answers_409(world, client_for):
    order = world.order(OrderState.QUOTING)
    response = _post_action(client_for(world.pm), order, "start_quotation")
    assert response.status_code == 409
    assert "this action is not possible from that state" in response.content.decode()
    assert client_for(world.pm).post(reverse("orders:transition", args=[order.id, "fly"])).status_code == 404


def test_title_is_escaped_on_list_and_detail(world, client_for):
    order = world.order(title=XSS)
    client = client_for(world.pm)
    for url in (reverse("orders:list"), reverse("orders:detail", args=[order.id]), reverse("dashboard")):
        html = client.get(url).content.decode()
        assert XSS not in html
        assert XSS_ESCAPED in html


# ------------------------------------------------------------------------------------------------ attachments


def test_upload_attachment_from_the_page(world, client_for):
    order = world.order(OrderState.QUOTING)
    client = client_for(world.pm)
    url = reverse("orders:upload", args=[order.id])
    response = client.post(url, {"file": SimpleUploadedFile("site.png", PNG), "kind": "photo"})
    assert response.status_code == 302
    attachment = Attachment.objects.get(order=order)
    assert (attachment.kind, attachment.content_type, attachment.history) == ("photo", "image/png", None)
    bad = client.post(url, {"file": SimpleUploadedFile("evil.pdf", b"<html>hi</html>"), "kind": "other"})
    assert bad.status_code == 422
    assert "The file was rejected" in bad.content.decode()
    assert Attachment.objects.filter(order=order).count() == 1
    forbidden = client_for(world.auditor).post(url, {"file": SimpleUploadedFile("a.pdf", PDF), "kind": "other"})
    assert forbidden.status_code == 403
    assert Attachment.objects.filter(order=order).count() == 1
    assert client_for(world.outsider).post(url, {"file": _pdf(), "kind": "other"}).status_code == 404


# ------------------------------------------------------------------------------------------------ create, edit


def test_create_order_from_the_form(world, client_for):
    client = client_for(world.pm)
    form = client.get(reverse("orders:create"))
    assert form.status_code == 200
    assert list(dict(form.context["form"].fields["project"].choices)) == ["", str(world.project.id)]
    response = client.post(
        reverse("orders:create"),
        {
            "project": str(world.project.id),
            "title": "Pump station",
            "kind": "installation",
            "contract_amount": "¥1,250,000.00",
            "tax_rate": "0.13",
            "description": "Two pumps",
        },
    )
    assert response.status_code == 302
    order = Order.objects.get(title="Pump station")
    assert response["Location"] == reverse("orders:detail", args=[order.id])
    assert (order.contract_amount, order.tax_rate, order.kind, order.state, order.created_by) == (
        Decimal("1250000.00"),
        Decimal("0.13"),
        "installation",
        OrderState.INITIATED,
        world.pm,
    )


def test_create_rejects_bad_input_with_field_errors(world, client_for):
    client = client_for(world.pm)
    response = client.post(
        reverse("orders:create"),
        {"project": str(world.other_project.id), "title": "", "kind": "x", "contract_amount": "-5", "tax_rate": "0.5"},
    )
    assert response.status_code == 422
    assert set(response.context["form"].errors) == {"project", "title", "kind", "contract_amount", "tax_rate"}
    assert 'class="form-control is-invalid"' in response.content.decode()
    assert Order.objects.count() == 0


def test_new_subcontract_is_prefilled_and_checked_against_the_parent(world, client_for):
    parent = world.order(OrderState.QUOTING, amount="1000.00")
    client = client_for(world.pm)
    detail = client.get(reverse("orders:detail", args=[parent.id])).content.decode()
    assert f'href="/orders/new/?parent={parent.id}"' in detail
    page = client.get(reverse("orders:create"), {"parent": str(parent.id)})
    assert page.context["form"].initial["parent"] == parent.number
    assert page.context["form"].initial["project"] == str(world.project.id)
    data = {
        "project": str(world.project.id),
        "parent": parent.number,
        "title": "Sub",
        "kind": "construction",
        "tax_rate": "0.09",
    }
    too_big = client.post(reverse("orders:create"), {**data, "contract_amount": "1000.01"})
    assert too_big.status_code == 422
    assert "left for subcontracts" in str(too_big.context["form"].errors["contract_amount"])
    ok = client.post(reverse("orders:create"), {**data, "contract_amount": "600"})
    assert ok.status_code == 302
    child = Order.objects.get(title="Sub")
    assert (child.parent_id, child.level) == (parent.id, 2)
    unknown = client.post(reverse("orders:create"), {**data, "parent": "ORD-1999-000001", "contract_amount": "1"})
    assert "There is no order ORD-1999-000001 that you can see." in unknown.content.decode()


def test_create_is_forbidden_without_a_project_to_create_in(world, client_for):
    for user in (world.auditor, world.approver):
        response = client_for(user).get(reverse("orders:create"))
        assert response.status_code == 403
        assert "You may not create orders on any project." in response.content.decode()


def test_edit_shows_only_editable_fields_and_saves_with_the_version(world, client_for):
    order = world.order()
    client = client_for(world.pm)
    page = client.get(reverse("orders:edit", args=[order.id]))
    assert set(page.context["form"].fields) == {"version", *state.EDITABLE_FIELDS[OrderState.INITIATED]}
    response = client.post(
        reverse("orders:edit", args=[order.id]),
        {
            "version": order.version,
            "title": "New title",
            "kind": order.kind,
            "contract_amount": "2000000.00",
            "tax_rate": "0.09",
            "stage_owner": str(world.pm.id),
            "stage_deadline": "",
            "description": "",
        },
    )
    assert response.status_code == 302
    fresh = Order.objects.get(pk=order.pk)
    assert (fresh.title, fresh.contract_amount, fresh.version) == (
        "New title",
        Decimal("2000000.00"),
        order.version + 1,
    )
    entry = AuditEntry.objects.filter(action="orders.order_updated").get()
    assert set(entry.changes) == {"title", "contract_amount", "stage_deadline"}

    pending = world.order(OrderState.PENDING_APPROVAL)
    form = client.get(reverse("orders:edit", args=[pending.id])).context["form"]
    assert set(form.fields) == {"version", "description", "stage_owner", "stage_deadline"}


def test_edit_with_a_stale_version_shows_the_conflict(world, client_for):
    order = world.order()
    client = client_for(world.pm)
    services.update_order(actor=world.pm, order_id=order.id, changes={"description": "meanwhile"})
    response = client.post(
        reverse("orders:edit", args=[order.id]),
        {
            "version": order.version,
            "title": "Mine",
            "kind": order.kind,
            "contract_amount": "1000000.00",
            "tax_rate": "0.09",
        },
    )
    assert response.status_code == 409
    assert "Someone else changed order" in response.content.decode()
    assert Order.objects.get(pk=order.pk).title == order.title


def test_edit_is_forbidden_to_who_may_not_edit(world, client_for):
    order = world.order()
    for user in (world.approver, world.auditor):
        response = client_for(user).get(reverse("orders:edit", args=[order.id]))
        assert response.status_code == 403
    assert client_for(world.outsider).get(reverse("orders:edit", args=[order.id])).status_code == 404
    settled = world.order(OrderState.CANCELLED)
    assert client_for(world.pm).get(reverse("orders:edit", args=[settled.id])).status_code == 403


# ------------------------------------------------------------------------------------------------ lifecycle


def test_lifecycle_page_lists_every_transition_from_the_table(world, client_for, monkeypatch):
    extra = Transition(
        "escalate",
        "Escalate to board",
        (OrderState.QUOTING,),
        OrderState.ON_HOLD,
        frozenset({Role.APPROVER}),
        comment_required=True,
    )
    monkeypatch.setattr(state, "TRANSITIONS", (*state.TRANSITIONS, extra))
    response = client_for(world.pm).get(reverse("orders:lifecycle"))
    assert response.status_code == 200
    assert [row["name"] for row in response.context["rows"]] == [t.name for t in state.TRANSITIONS]
    html = response.content.decode()
    row = re.search(r'<tr data-transition="escalate">.*?</tr>', html, re.S).group(0)
    assert "Escalate to board" in row and "Approver" in row and "Yes" in row
    assert 'data-transition="escalate"' in html.split('id="lifecycle-diagram"')[1]
    cancel = next(r for r in response.context["rows"] if r["name"] == "cancel")
    assert [sorted(g["roles"]) for g in cancel["role_groups"]] == [
        ["Administrator", "Project manager"],
        ["Administrator"],
    ]
    sign = next(r for r in response.context["rows"] if r["name"] == "sign")
    assert sign["guards"] == [
        {"code": "order.signed_contract_required", "description": "a signed contract is attached"}
    ]


# ------------------------------------------------------------------------------------------------ admin


def test_admin_shows_orders_read_only(world):
    order = world.order()
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(staff)
    assert client.get(reverse("admin:orders_order_changelist")).status_code == 200
    assert client.get(reverse("admin:orders_order_change", args=[order.id])).status_code == 200
    assert client.get(reverse("admin:orders_order_add")).status_code == 403
    assert client.post(reverse("admin:orders_order_delete", args=[order.id]), {"post": "yes"}).status_code == 403
    for name in (
        "core_auditentry",
        "core_outboxmessage",
        "accounts_orgunit",
        "accounts_projectmembership",
        "accounts_apitoken",
        "orders_orderhistory",
        "orders_attachment",
    ):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200
        assert client.get(reverse(f"admin:{name}_add")).status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()


def test_admin_manages_users_with_the_custom_fields(world):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(staff)
    assert client.get(reverse("admin:accounts_user_add")).status_code == 200
    change = client.get(reverse("admin:accounts_user_change", args=[world.pm.id]))
    assert change.status_code == 200
    html = change.content.decode()
    for field in ("display_name", "org_unit", "phone", "language"):
        assert f'name="{field}"' in html
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "username": "newbie",
            "display_name": "新人",
            "email": "n@example.com",
            "usable_password": "true",
            "password1": "a-Long-pass-9876",
            "password2": "a-Long-pass-9876",
        },
    )
    assert response.status_code == 302
    assert world.pm.__class__.objects.get(username="newbie").display_name == "新人"


# ------------------------------------------------------------------------------------------------ queries


def _queries(client, url) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_list_dashboard_and_detail_queries_do_not_grow_with_rows(world, client_for):
    parent = world.order(OrderState.QUOTING, amount="9000000.00")
    for _ in range(2):
        world.order(amount="100.00", parent=parent)
    client = client_for(world.pm)
    urls = [reverse("orders:list"), reverse("dashboard"), reverse("orders:detail", args=[parent.id])]
    client.get(urls[0])  # warm the session and caches
    before = [_queries(client, url) for url in urls]
    for _ in range(12):
        child = world.order(amount="100.00", parent=parent)
        world.walk(child, "start_quotation")
    services.attach_file(actor=world.pm, order_id=parent.id, kind="photo", upload=inspect_upload("a.png", PNG))
    assert [_queries(client, url) for url in urls] == before
