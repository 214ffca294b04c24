import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from eoms.core.audit import seal
from eoms.core.models import AuditEntry

XSS = "<script>alert(1)</script>"


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        client.force_login(user)
        return client

    return make


def _ids(response) -> list[int]:
    return [int(s) for s in re.findall(r'<tr data-id="(\d+)"', response.content.decode())]


def _newest_first(entries) -> list[int]:
    return list(entries.order_by("-id").values_list("id", flat=True))


@pytest.mark.parametrize("role", ["project_manager", "approver", "field_engineer", "finance", "outsider"])
def test_audit_browser_is_forbidden_to_other_roles(world, client_for, role):
    world.order()
    client = client_for(world.by_role[role])
    assert client.get(reverse("audit")).status_code == 403
    assert client.post(reverse("audit_verify")).status_code == 403


def test_audit_browser_needs_sign_in(world):
    response = Client().get(reverse("audit"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_audit_browser_lists_entries_newest_first_with_changes(world, client_for, role):
    order = world.order("QUOTING")
    response = client_for(world.by_role[role]).get(reverse("audit"))
    assert response.status_code == 200
    assert _ids(response) == _newest_first(AuditEntry.objects.all())
    html = response.content.decode()
    transition = AuditEntry.objects.get(action="orders.start_quotation")
    row = re.search(rf'<tr data-id="{transition.id}".*?</tr>', html, re.S).group(0)
    assert order.number in row and world.pm.username in row
    assert '<del class="text-red">INITIATED</del> → <ins class="text-green text-decoration-none">QUOTING</ins>' in row


def test_audit_filters(world, client_for):
    first = world.order()
    second = world.order("QUOTING")
    client = client_for(world.auditor)
    url = reverse("audit")

    by_action = client.get(url, {"action": "orders.start_quotation"})
    assert _ids(by_action) == [AuditEntry.objects.get(action="orders.start_quotation").id]

    by_object = client.get(url, {"object_type": "orders.order", "object_id": str(first.id)})
    assert _ids(by_object) == _newest_first(AuditEntry.objects.filter(object_id=str(first.id)))
    assert len(_ids(by_object)) == 1

    by_actor = client.get(url, {"actor": world.approver.username})
    assert _ids(by_actor) == []
    assert len(_ids(client.get(url, {"actor": world.pm.username}))) == 3

    today = timezone.localdate(second.created_at).isoformat()  # days are Asia/Shanghai days
    # Today: the world's approval flow (saved, published), the three order entries and the
    # auditor's sign-in.
    assert len(_ids(client.get(url, {"date_from": today, "date_to": today}))) == 2 + 3 + 1
    assert _ids(client.get(url, {"date_to": "2000-01-01"})) == []

    bad = client.get(url, {"date_from": "not a date", "date_to": "2000-01-01", "action": "nope"})
    assert bad.status_code == 200
    assert set(bad.context["form"].errors) == {"date_from", "action"}
    assert _ids(bad) == []


def test_audit_pagination(world, client_for):
    for i in range(51):
        world.order(title=f"o{i}")
    client = client_for(world.auditor)
    first = client.get(reverse("audit"))
    assert len(_ids(first)) == 50
    assert "Page 1 of 2" in first.content.decode()
    # 51 orders, the world's approval flow (2 entries) and the auditor's sign-in: page 2 holds the
    # three oldest.
    oldest = list(AuditEntry.objects.order_by("id").values_list("id", flat=True)[:4])
    assert _ids(client.get(reverse("audit"), {"page": 2})) == oldest[::-1]


def test_audit_escapes_html_in_entries(world, client_for):
    world.order(title=XSS)
    html = client_for(world.auditor).get(reverse("audit")).content.decode()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_verify_chain_shows_intact_then_the_first_bad_entry(world, client_for, audit_rows_editable):
    world.order("PENDING_APPROVAL")
    client = client_for(world.auditor)
    count = AuditEntry.objects.count()

    intact = client.post(reverse("audit_verify"))
    assert intact.status_code == 200
    html = intact.content.decode()
    assert "The audit chain is intact." in html
    assert f"{count} entries checked." in html
    assert 'id="audit-table"' in html  # the full page, without HTMX

    partial = client.post(reverse("audit_verify"), HTTP_HX_REQUEST="true")
    assert "<html" not in partial.content.decode()
    assert 'id="chain-intact"' in partial.content.decode()

    AuditEntry.objects.filter(seq=2).update(changes={"state": ["forged", "forged"]})
    broken = client.post(reverse("audit_verify")).content.decode()
    assert "The audit chain is broken at entry #2." in broken
    assert 'data-seq="2"' in broken and "edited" in broken
    assert "chain-intact" not in broken


@pytest.mark.parametrize(("language", "marker"), [("en", "not sealed yet"), ("zh-hans", "尚未封存")])
def test_entries_not_sealed_yet_are_marked_then_numbered(world, client_for, language, marker):
    order = world.order()
    client = client_for(world.auditor)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = language
    created = AuditEntry.objects.get(action="orders.order_created", object_id=str(order.id))
    html = client.get(reverse("audit")).content.decode()
    row = re.search(rf'<tr data-id="{created.id}">.*?</tr>', html, re.S).group(0)
    assert marker in row
    seal()
    created.refresh_from_db()
    html = client.get(reverse("audit")).content.decode()
    row = re.search(rf'<tr data-id="{created.id}" data-seq="{created.seq}">.*?</tr>', html, re.S).group(0)
    assert marker not in row
    assert f'<td class="text-secondary text-nowrap">{created.seq}</td>' in row
