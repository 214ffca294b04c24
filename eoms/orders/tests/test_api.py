"""The orders API through the Django test client, with bearer tokens and with the page session.

Every error answers application/problem+json with a stable code, and a refused request writes nothing.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from eoms.accounts.services import issue_api_token, revoke_api_token
from eoms.core.audit import verify_chain
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.orders import services
from eoms.orders.models import Attachment, Order, OrderHistory
from eoms.orders.state import OrderState
from eoms.testing.matrix import REQUEST_EVENTS
from eoms.testing.world import PDF, PNG

S = OrderState
BASE = "/api/v1/orders"
T0 = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 200
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200 + b"PE\x00\x00"


class Api:
    """A client speaking as one user, by bearer token (default) or by page session."""

    def __init__(self, user=None, *, session: bool = False, secret: str | None = None):
        self.client = Client()
        self.meta = {}
        if secret:
            self.meta["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
        elif user is not None and session:
            self.client.force_login(user)
        elif user is not None:
            self.meta["HTTP_AUTHORIZATION"] = f"Bearer {issue_api_token(actor=user, name='test')[1]}"

    def get(self, path, params=None):
        return self.client.get(path, params or {}, **self.meta)

    def post(self, path, body=None):
        return self.client.post(path, json.dumps(body if body is not None else {}), "application/json", **self.meta)

    def patch(self, path, body):
        return self.client.patch(path, json.dumps(body), "application/json", **self.meta)

    def upload(self, order_id, name, content, kind="other"):
        return self.client.post(
            f"{BASE}/{order_id}/attachments", {"file": SimpleUploadedFile(name, content), "kind": kind}, **self.meta
        )


@pytest.fixture
def pm(world):
    return Api(world.pm)


def counts() -> dict:
    return {
        "orders": Order.objects.count(),
        "history": OrderHistory.objects.count(),
        "attachments": Attachment.objects.count(),
        "audit": AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count(),
        "outbox": OutboxMessage.objects.count(),
        "files": sum(1 for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())
        if Path(settings.MEDIA_ROOT).exists()
        else 0,
    }


def assert_problem(response, status: int, code: str, fields: list[str] | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"], body["type"]) == (status, code, f"https://eoms.dev/problems/{code}")
    assert body["title"] and body["detail"]
    if fields is not None:
        assert [e["field"] for e in body["errors"]] == fields
        assert all(e["message"] for e in body["errors"])
    return body


def numbers(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [o["number"] for o in response.json()["results"]]


# Lists and filters -------------------------------------------------------------------------------


@pytest.fixture
def listed(world):
    """Four orders of world.project made on 1 June 2026, one of another project."""
    with time_machine.travel(T0, tick=False) as clock:
        small = world.order(S.QUOTING, amount="250000.50", title="雨水管道维修")
        clock.shift(timedelta(minutes=1))
        main = world.order(S.INITIATED, amount="1000000.00", title="滨江大道改造")
        clock.shift(timedelta(minutes=1))
        big = world.order(S.APPROVED, amount="5000000.00", title="跨江大桥引道")
        clock.shift(timedelta(minutes=1))
        done = world.order(S.CANCELLED, amount="800000.00", title="绿化补植")
        clock.shift(timedelta(minutes=1))
        services.create_order(
            actor=world.admin, project=world.other_project, title="别的项目", contract_amount=Decimal("10.00")
        )
    return {"small": small.number, "main": main.number, "big": big.number, "done": done.number}


def test_list_filters(world, pm, listed):
    n = listed
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        everything = pm.get(BASE)
        assert everything.json()["count"] == 4
        assert numbers(everything) == [n["done"], n["big"], n["main"], n["small"]]
        assert numbers(pm.get(BASE, {"state": "QUOTING"})) == [n["small"]]
        assert numbers(pm.get(BASE, {"state": ["QUOTING", "APPROVED"]})) == [n["big"], n["small"]]
        assert numbers(pm.get(BASE, {"project": str(world.project.id)})) == [n["done"], n["big"], n["main"], n["small"]]
        assert numbers(pm.get(BASE, {"project": str(world.other_project.id)})) == []
        assert numbers(pm.get(BASE, {"amount_min": "250000.50", "amount_max": "1000000"})) == [
            n["done"],
            n["main"],
            n["small"],
        ]
        assert numbers(pm.get(BASE, {"amount_min": "250000.51"})) == [n["done"], n["big"], n["main"]]
        assert numbers(pm.get(BASE, {"q": "大桥"})) == [n["big"]]
        assert numbers(pm.get(BASE, {"q": n["main"]})) == [n["main"]]
        assert numbers(pm.get(BASE, {"q": world.project.customer.name})) == [n["done"], n["big"], n["main"], n["small"]]
        assert numbers(pm.get(BASE, {"q": "no such thing"})) == []
        assert numbers(pm.get(BASE, {"ordering": "amount"})) == [n["small"], n["done"], n["main"], n["big"]]
        assert numbers(pm.get(BASE, {"ordering": "-amount"})) == [n["big"], n["main"], n["done"], n["small"]]
        assert numbers(pm.get(BASE, {"ordering": "number"})) == sorted(n.values())
        assert numbers(pm.get(BASE, {"created_from": "2026-06-01", "created_to": "2026-06-01"})) == numbers(everything)
        assert numbers(pm.get(BASE, {"created_from": "2026-06-02"})) == []
        assert numbers(pm.get(BASE, {"stage_owner": str(world.approver.id)})) == []
        assert numbers(pm.get(BASE, {"kind": "construction", "region": "east"})) == numbers(everything)
    # Nothing is overdue on the day; six days later the INITIATED order (5 days) is.
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        assert numbers(pm.get(BASE, {"overdue": "true"})) == []
    with time_machine.travel(T0 + timedelta(days=6), tick=False):
        assert numbers(pm.get(BASE, {"overdue": "true"})) == [n["main"]]
        assert numbers(pm.get(BASE, {"overdue": "false"})) == [n["done"], n["big"], n["small"]]
        assert pm.get(f"{BASE}/{Order.objects.get(number=n['main']).id}").json()["overdue"] is True


def test_list_pages(pm, listed):
    first = pm.get(BASE, {"page_size": 3, "ordering": "number"}).json()
    second = pm.get(BASE, {"page_size": 3, "page": 2, "ordering": "number"}).json()
    beyond = pm.get(BASE, {"page_size": 3, "page": 9}).json()
    assert (first["count"], first["page"], first["page_size"], len(first["results"])) == (4, 1, 3, 3)
    assert (second["count"], second["page"], len(second["results"])) == (4, 2, 1)
    assert [o["number"] for o in first["results"] + second["results"]] == sorted(listed.values())
    assert (beyond["count"], beyond["results"]) == (4, [])


def test_list_is_scoped(world, listed):
    assert Api(world.admin).get(BASE).json()["count"] == 5
    assert Api(world.auditor).get(BASE).json()["count"] == 5
    assert Api(world.engineer).get(BASE).json()["count"] == 4
    assert numbers(Api(world.outsider).get(BASE)) == ["ORD-2026-000005"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "BOGUS"}, "state.0"),
        ({"state": ["QUOTING", "quoting"]}, "state.1"),
        ({"amount_min": "abc"}, "amount_min"),
        ({"amount_max": "-1"}, "amount_max"),
        ({"project": "not-a-uuid"}, "project"),
        ({"overdue": "maybe"}, "overdue"),
        ({"ordering": "title"}, "ordering"),
        ({"ordering": "-created; DROP TABLE orders_order"}, "ordering"),
        ({"page": "0"}, "page"),
        ({"page_size": "201"}, "page_size"),
        ({"created_from": "2026-13-01"}, "created_from"),
        ({"q": "x" * 101}, "q"),
    ],
)
def test_list_refuses_bad_filters(pm, listed, params, field):
    assert_problem(pm.get(BASE, params), 422, "validation_failed", [field])


def test_query_with_a_nul_character_is_harmless(pm, listed):
    assert numbers(pm.get(BASE, {"q": "大桥\x00"})) == [listed["big"]]
    assert pm.get(BASE, {"q": "\x00"}).json()["count"] == 4


# Detail, create, update --------------------------------------------------------------------------


def test_detail(world, pm):
    with time_machine.travel(T0, tick=False):
        order = world.order(S.QUOTING, amount="1090000.00")
    body = pm.get(f"{BASE}/{order.id}").json()
    assert {k: body[k] for k in ("number", "state", "state_label", "level", "version", "parent_id")} == {
        "number": order.number,
        "state": "QUOTING",
        "state_label": "Quoting",
        "level": 1,
        "version": 2,
        "parent_id": None,
    }
    assert (body["contract_amount"], body["tax_rate"], body["tax_amount"], body["net_amount"]) == (
        "1090000.00",
        "0.09",
        "90000.00",
        "1000000.00",
    )
    assert (body["estimated_cost"], body["margin"]) == (None, None)  # no cost estimate yet
    assert body["project"] == {"id": str(world.project.id), "name": str(world.project)}
    assert body["stage_owner"] == {"id": str(world.pm.id), "username": "pm1", "display_name": world.pm.display_name}
    assert body["stage_deadline"] == "2026-06-11T01:00:00Z"  # ten days in QUOTING
    assert [(h["transition"], h["from_state"], h["to_state"], h["actor"]["username"]) for h in body["history"]] == [
        ("create", "", "INITIATED", "pm1"),
        ("start_quotation", "INITIATED", "QUOTING", "pm1"),
    ]
    assert body["actions"] == [
        {"name": "submit", "label": "Submit for approval", "to_state": "PENDING_APPROVAL", "comment_required": False},
        {"name": "cancel", "label": "Cancel", "to_state": "CANCELLED", "comment_required": True},
    ]
    assert body["editable_fields"] == [
        "contract_amount",
        "description",
        "estimated_cost",
        "kind",
        "stage_deadline",
        "stage_owner",
        "tax_rate",
        "title",
    ]
    as_auditor = Api(world.auditor).get(f"{BASE}/{order.id}").json()
    assert (as_auditor["actions"], as_auditor["editable_fields"]) == ([], [])
    assert_problem(Api(world.outsider).get(f"{BASE}/{order.id}"), 404, "order.not_found")
    assert_problem(pm.get(f"{BASE}/01900000-0000-7000-8000-000000000000"), 404, "order.not_found")
    assert_problem(pm.get(f"{BASE}/not-a-uuid"), 422, "validation_failed", ["order_id"])


@pytest.mark.parametrize("session", [False, True], ids=["token", "session"])
def test_create(world, session):
    api = Api(world.pm, session=session)
    before = counts()
    response = api.post(
        BASE,
        {
            "project_id": str(world.project.id),
            "title": "<script>alert('x')</script> 管网",
            "contract_amount": "1250000.50",
            "tax_rate": "0.06",
            "kind": "design",
            "description": "第一期",
        },
    )
    assert response.status_code == 201, response.content
    assert response["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    order = Order.objects.get(pk=body["id"])
    # Stored and returned verbatim: escaping is the pages' job, JSON needs none.
    assert order.title == body["title"] == "<script>alert('x')</script> 管网"
    assert b"<script>alert('x')</script>" in response.content
    assert (body["state"], body["kind"], body["contract_amount"], body["tax_rate"], body["version"]) == (
        "INITIATED",
        "design",
        "1250000.50",
        "0.06",
        1,
    )
    assert [h["transition"] for h in body["history"]] == ["create"]
    assert counts() == {
        **before,
        "orders": 1,
        "history": 1,
        "audit": before["audit"] + 1,
        "outbox": before["outbox"] + 1,
    }


def test_create_with_owner_and_parent(world, pm):
    parent = world.order(S.SIGNED)
    body = pm.post(
        BASE,
        {
            "project_id": str(world.project.id),
            "title": "分包",
            "contract_amount": 300000,
            "parent_id": str(parent.id),
            "stage_owner_id": str(world.engineer.id),
        },
    ).json()
    assert (body["parent_id"], body["level"], body["stage_owner"]["username"]) == (str(parent.id), 2, "engineer1")


def test_update(world, pm):
    order = world.order(S.INITIATED)
    before = counts()
    response = pm.patch(
        f"{BASE}/{order.id}",
        {
            "version": 1,
            "title": "新标题",
            "contract_amount": "2000000.00",
            "stage_deadline": "2026-09-30T18:00:00+08:00",
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["title"], body["contract_amount"], body["version"], body["stage_deadline"]) == (
        "新标题",
        "2000000.00",
        2,
        "2026-09-30T10:00:00Z",
    )
    assert counts() == {**before, "audit": before["audit"] + 1, "outbox": before["outbox"] + 1}
    updated = counts()
    stale = pm.patch(f"{BASE}/{order.id}", {"version": 1, "title": "旧版本"})
    assert assert_problem(stale, 409, "order.stale")["detail"] == (
        f"Order {order.number} is at version 2, not 1; reload it."
    )
    assert_problem(pm.patch(f"{BASE}/{order.id}", {"title": None}), 422, "validation_failed", ["title"])
    assert_problem(pm.patch(f"{BASE}/{order.id}", {"contract_amount": "0"}), 422, "validation_failed")
    assert_problem(pm.patch(f"{BASE}/{order.id}", {"title": "a\x00b"}), 422, "order.validation_failed", ["title"])
    assert_problem(
        pm.patch(f"{BASE}/{order.id}", {"stage_owner_id": "01900000-0000-7000-8000-000000000000"}),
        422,
        "validation_failed",
        ["stage_owner_id"],
    )
    assert_problem(
        pm.patch(f"{BASE}/{order.id}", {"stage_deadline": "2026-09-30T18:00:00"}),
        422,
        "order.validation_failed",
        ["stage_deadline"],
    )
    auditor, outsider = Api(world.auditor, session=True), Api(world.outsider, session=True)
    assert_problem(auditor.patch(f"{BASE}/{order.id}", {"title": "x"}), 403, "order.permission_denied")
    assert_problem(outsider.patch(f"{BASE}/{order.id}", {"title": "x"}), 404, "order.not_found")
    assert counts() == updated
    order.refresh_from_db()
    assert (order.title, order.version) == ("新标题", 2)


def test_update_refuses_fields_frozen_by_the_state(world, pm):
    approved = world.order(S.APPROVED)
    before = counts()
    body = assert_problem(
        pm.patch(f"{BASE}/{approved.id}", {"contract_amount": "5.00", "kind": "design"}),
        422,
        "order.validation_failed",
        ["contract_amount", "kind"],
    )
    assert body["errors"][0]["message"] == "Not editable in state APPROVED."
    assert counts() == before


# Transitions -------------------------------------------------------------------------------------


def test_every_transition_endpoint(world):
    pm, approver, engineer, finance, admin = (
        Api(world.pm),
        Api(world.approver, session=True),
        Api(world.engineer),
        Api(world.finance),
        Api(world.admin),
    )
    order = world.order(S.INITIATED)
    url = f"{BASE}/{order.id}"

    def take(api, name, expect_state, **body):
        response = api.post(f"{url}/{name}", body)
        assert response.status_code == 200, (name, response.content)
        assert response.json()["state"] == expect_state
        return response.json()

    take(pm, "start_quotation", "QUOTING")
    take(pm, "submit", "PENDING_APPROVAL")
    # Approval is decided on the approver's task (eoms.approvals); the order follows.
    assert_problem(approver.post(f"{url}/approve", {}), 404, "not_found")
    world.decide(order, "reject", comment="单价偏高")
    assert pm.get(url).json()["state"] == "REJECTED"
    take(pm, "revise", "QUOTING")
    take(pm, "submit", "PENDING_APPROVAL")
    world.decide(order, "approve", comment="同意")
    contract = pm.upload(order.id, "contract.pdf", PDF, kind="signed_contract").json()
    signed = take(pm, "sign", "SIGNED", attachment_ids=[contract["id"]], version=7)
    assert signed["entry"]["transition"] == "sign" and signed["entry"]["attachment_ids"] == [contract["id"]]
    assert "history" not in signed  # the whole timeline is the detail's, not read again by a transition
    take(engineer, "start_execution", "IN_EXECUTION")
    take(pm, "hold", "ON_HOLD", comment="雨季停工")
    take(admin, "resume", "IN_EXECUTION")
    take(engineer, "request_acceptance", "PENDING_ACCEPTANCE")
    take(pm, "reject_acceptance", "IN_EXECUTION", comment="渗漏需返工")
    take(engineer, "request_acceptance", "PENDING_ACCEPTANCE")
    report = pm.upload(order.id, "report.pdf", PDF, kind="acceptance_report").json()
    take(pm, "accept", "ACCEPTED", attachment_ids=[report["id"]])
    take(finance, "start_settlement", "SETTLING")
    final = take(finance, "settle", "SETTLED")
    assert final["version"] == 17
    assert final["actions"] == [] and final["editable_fields"] == []
    assert len(pm.get(url).json()["history"]) == 17
    cancelled = world.order(S.SIGNED)
    assert_problem(pm.post(f"{BASE}/{cancelled.id}/cancel", {"comment": "业主取消"}), 403, "order.permission_denied")
    body = Api(world.admin).post(f"{BASE}/{cancelled.id}/cancel", {"comment": "业主取消"}).json()
    assert (body["state"], body["cancel_reason"]) == ("CANCELLED", "业主取消")
    assert verify_chain() is None


def test_a_transition_answers_the_order_as_the_schema_and_the_detail_would(world, pm):
    """The transition's answer is rendered without validating it against OrderMovedOut again, from the
    order the service moved: it must be what the validated schema gives, agree with a fresh detail, and
    cost no statement after the transition's own."""
    import json

    from django.db import connection
    from ninja.responses import NinjaJSONEncoder

    from eoms.orders.api import OrderMovedOut

    order = world.order(S.IN_EXECUTION)
    url = f"{BASE}/{order.id}"
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        body = pm.post(f"{url}/hold", {"comment": "雨季停工", "version": order.version}).json()
    assert body == json.loads(json.dumps(OrderMovedOut.model_validate(body).model_dump(), cls=NinjaJSONEncoder))
    detail = pm.get(url).json()
    assert {k: v for k, v in body.items() if k != "entry"} == {
        k: v for k, v in detail.items() if k not in ("history", "attachments")
    }
    assert body["entry"] == detail["history"][-1]
    assert (body["state"], body["entry"]["transition"], body["entry"]["comment"]) == ("ON_HOLD", "hold", "雨季停工")
    reads = [sql for sql in seen if sql.lstrip().upper().startswith("SELECT")]
    assert not [sql for sql in reads if "orders_orderhistory" in sql or "orders_attachment" in sql], reads
    order_table = f"FROM {connection.ops.quote_name('orders_order')}"
    assert len([sql for sql in reads if order_table in sql]) == 1, reads  # the service's read only


def test_transition_errors(world, pm):
    order = world.order(S.QUOTING)
    approved = world.order(S.APPROVED)
    url = f"{BASE}/{order.id}"
    finance, auditor, outsider = Api(world.finance), Api(world.auditor), Api(world.outsider)
    before = counts()
    body = assert_problem(pm.post(f"{url}/revise"), 409, "order.invalid_transition")
    assert body["current_state"] == "QUOTING"
    assert body["detail"] == (
        f"Order {order.number} is QUOTING; 'revise' is possible only from REJECTED. Possible now: submit, cancel."
    )
    assert_problem(finance.post(f"{url}/submit"), 403, "order.permission_denied")
    assert_problem(auditor.post(f"{url}/submit"), 403, "order.permission_denied")
    assert_problem(outsider.post(f"{url}/submit"), 404, "order.not_found")
    assert_problem(pm.post(f"{url}/cancel", {"comment": "  "}), 422, "order.validation_failed", ["comment"])
    assert_problem(pm.post(f"{url}/submit", {"version": 1}), 409, "order.stale")
    assert_problem(pm.post(f"{url}/submit", {"comment": "x" * 4001}), 422, "validation_failed", ["comment"])
    assert_problem(
        pm.post(f"{url}/submit", {"attachment_ids": ["nope"]}), 422, "validation_failed", ["attachment_ids.0"]
    )
    assert_problem(pm.post(f"{url}/teleport"), 404, "not_found")
    assert_problem(pm.post(f"{url}/submit/now"), 404, "not_found")
    assert_problem(pm.get(f"{url}/submit"), 405, "method_not_allowed")
    assert_problem(pm.client.post(f"{url}/submit", "{not json", "application/json", **pm.meta), 400, "invalid_body")
    assert_problem(pm.post(f"{BASE}/{approved.id}/sign"), 409, "order.signed_contract_required")
    assert counts() == before


# Attachments -------------------------------------------------------------------------------------


def test_upload_and_download(world, pm):
    order = world.order(S.INITIATED)
    before = counts()
    response = pm.upload(order.id, "施工图 A-01.pdf", PDF, kind="drawing")
    assert response.status_code == 201, response.content
    meta = response.json()
    assert {k: meta[k] for k in ("kind", "original_name", "content_type", "size", "sha256", "transition")} == {
        "kind": "drawing",
        "original_name": "施工图 A-01.pdf",
        "content_type": "application/pdf",
        "size": len(PDF),
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "transition": None,
    }
    assert counts() == {
        **before,
        "attachments": 1,
        "audit": before["audit"] + 1,
        "outbox": before["outbox"] + 1,
        "files": 1,
    }
    listed = Api(world.auditor).get(f"{BASE}/{order.id}/attachments").json()
    assert [a["id"] for a in listed] == [meta["id"]]
    download = Api(world.finance, session=True).get(f"{BASE}/{order.id}/attachments/{meta['id']}")
    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    assert hashlib.sha256(content).hexdigest() == meta["sha256"]
    assert download["Content-Type"] == "application/pdf"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Disposition"].startswith("attachment; filename")
    assert_problem(Api(world.outsider).get(f"{BASE}/{order.id}/attachments/{meta['id']}"), 404, "order.not_found")
    other = world.order(S.INITIATED)
    assert_problem(pm.get(f"{BASE}/{other.id}/attachments/{meta['id']}"), 404, "order.not_found")
    photo = Api(world.engineer).upload(order.id, "IMG_0001.jpg", PNG, kind="photo").json()
    assert (photo["content_type"], photo["original_name"]) == ("image/png", "IMG_0001.jpg")


@pytest.mark.parametrize(
    ("name", "content", "kind", "code", "field"),
    [
        ("contract.pdf", ELF, "signed_contract", "attachment.rejected", "file"),
        ("contract.pdf", EXE, "signed_contract", "attachment.rejected", "file"),
        ("contract.pdf", b"<html><script>alert(1)</script></html>", "other", "attachment.rejected", "file"),
        ("empty.pdf", b"", "other", "attachment.rejected", "file"),
        ("contract.pdf", PDF, "selfie", "validation_failed", "kind"),
    ],
)
def test_upload_refuses_bad_files(world, pm, name, content, kind, code, field):
    order = world.order(S.INITIATED)
    before = counts()
    assert_problem(pm.upload(order.id, name, content, kind=kind), 422, code, [field])
    assert counts() == before


def test_upload_refuses_oversized_files(world, pm, settings):
    settings.ATTACHMENT_MAX_MB = 1
    order = world.order(S.INITIATED)
    before = counts()
    big = PDF + b"0" * (1024 * 1024 - len(PDF) + 1)
    body = assert_problem(pm.upload(order.id, "big.pdf", big), 422, "attachment.rejected", ["file"])
    assert body["errors"][0]["message"] == "big.pdf is larger than 1 MB."
    assert counts() == before
    assert pm.upload(order.id, "fits.pdf", big[:-1]).status_code == 201


def test_upload_without_a_file(world, pm):
    order = world.order(S.INITIATED)
    response = pm.client.post(f"{BASE}/{order.id}/attachments", {"kind": "other"}, **pm.meta)
    assert_problem(response, 422, "validation_failed", ["file"])


def test_upload_refused_to_who_may_not(world):
    order = world.order(S.INITIATED)
    finance, auditor, outsider = Api(world.finance), Api(world.auditor), Api(world.outsider)
    before = counts()
    assert_problem(finance.upload(order.id, "a.pdf", PDF), 403, "order.permission_denied")
    assert_problem(auditor.upload(order.id, "a.pdf", PDF), 403, "order.permission_denied")
    assert_problem(outsider.upload(order.id, "a.pdf", PDF), 404, "order.not_found")
    assert counts() == before


# Tree --------------------------------------------------------------------------------------------


def test_tree(world, pm):
    root = world.order(S.SIGNED, amount="1000000.00")
    first = services.create_order(
        actor=world.pm, project=world.project, title="分包一", contract_amount=Decimal("400000"), parent_id=root.id
    )
    second = services.create_order(
        actor=world.pm, project=world.project, title="分包二", contract_amount=Decimal("300000"), parent_id=root.id
    )
    leaf = services.create_order(
        actor=world.pm, project=world.project, title="再分包", contract_amount=Decimal("100000"), parent_id=first.id
    )
    tree = pm.get(f"{BASE}/{root.id}/tree").json()

    def shape(node):
        return (node["number"], node["level"], node["contract_amount"], [shape(c) for c in node["children"]])

    assert shape(tree) == (
        root.number,
        1,
        "1000000.00",
        [(first.number, 2, "400000.00", [(leaf.number, 3, "100000.00", [])]), (second.number, 2, "300000.00", [])],
    )
    assert shape(pm.get(f"{BASE}/{first.id}/tree").json()) == (
        first.number,
        2,
        "400000.00",
        [(leaf.number, 3, "100000.00", [])],
    )
    assert_problem(Api(world.outsider).get(f"{BASE}/{root.id}/tree"), 404, "order.not_found")


# Bad input on create: refused with a field, nothing written ------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "fields"),
    [
        ({"contract_amount": "abc"}, "validation_failed", ["contract_amount"]),
        ({"contract_amount": [1]}, "validation_failed", ["contract_amount"]),
        ({"contract_amount": "NaN"}, "validation_failed", ["contract_amount"]),
        ({"contract_amount": "Infinity"}, "validation_failed", ["contract_amount"]),
        ({"contract_amount": "-1.00"}, "validation_failed", ["contract_amount"]),
        ({"contract_amount": 0}, "validation_failed", ["contract_amount"]),
        ({"contract_amount": "0.00"}, "validation_failed", ["contract_amount"]),
        ({"contract_amount": "10000000000.00"}, "validation_failed", ["contract_amount"]),
        ({"contract_amount": "9999999999.991"}, "validation_failed", ["contract_amount"]),
        ({"contract_amount": "100.001"}, "validation_failed", ["contract_amount"]),
        ({"contract_amount": 1e30}, "validation_failed", ["contract_amount"]),
        ({"title": 5}, "validation_failed", ["title"]),
        ({"title": "标" * 201}, "validation_failed", ["title"]),
        ({"title": "   "}, "order.validation_failed", ["title"]),
        ({"title": "bad\x00title"}, "order.validation_failed", ["title"]),
        ({"description": "bad\x00text"}, "order.validation_failed", ["description"]),
        ({"project_id": "nope"}, "validation_failed", ["project_id"]),
        ({"project_id": None}, "validation_failed", ["project_id"]),
        ({"tax_rate": "0.10"}, "order.validation_failed", ["tax_rate"]),
        ({"tax_rate": "abc"}, "validation_failed", ["tax_rate"]),
        ({"kind": "demolition"}, "validation_failed", ["kind"]),
        ({"stage_owner_id": "01900000-0000-7000-8000-000000000000"}, "validation_failed", ["stage_owner_id"]),
        ({"parent_id": "01900000-0000-7000-8000-000000000000"}, "order.validation_failed", ["parent_id"]),
    ],
)
def test_create_refuses_bad_input(world, pm, change, code, fields):
    before = counts()
    body = {"project_id": str(world.project.id), "title": "管网改造", "contract_amount": "1000.00", **change}
    assert_problem(pm.post(BASE, body), 422, code, fields)
    assert counts() == before


def test_create_refuses_missing_fields_and_broken_bodies(world, pm):
    before = counts()
    assert_problem(pm.post(BASE, {}), 422, "validation_failed", ["project_id", "title", "contract_amount"])
    assert_problem(pm.post(BASE, [1, 2]), 422, "validation_failed")
    assert_problem(pm.client.post(BASE, "{", "application/json", **pm.meta), 400, "invalid_body")
    assert_problem(pm.client.delete(BASE, **pm.meta), 405, "method_not_allowed")
    assert_problem(pm.post("/api/v1/nothing-here"), 404, "not_found")
    assert counts() == before


def test_child_larger_than_its_parent(world, pm):
    parent = world.order(S.SIGNED, amount="500000.00")
    before = counts()
    body = assert_problem(
        pm.post(
            BASE,
            {
                "project_id": str(world.project.id),
                "title": "分包",
                "contract_amount": "500000.01",
                "parent_id": str(parent.id),
            },
        ),
        422,
        "order.validation_failed",
        ["contract_amount"],
    )
    assert body["errors"][0]["message"] == (
        f"Order {parent.number} has 500,000.00 left for subcontracts; 500,000.01 exceeds it."
    )
    assert counts() == before


def test_create_outside_scope_or_role(world):
    outsider, finance, auditor = Api(world.outsider), Api(world.finance), Api(world.auditor)
    before = counts()
    body = {"project_id": str(world.project.id), "title": "x", "contract_amount": "1.00"}
    assert_problem(outsider.post(BASE, body), 404, "project.not_found")
    assert_problem(finance.post(BASE, body), 403, "order.permission_denied")
    assert_problem(auditor.post(BASE, body), 403, "order.permission_denied")
    assert counts() == before


# Authentication ------------------------------------------------------------------------------------


def test_refused_credentials(world):
    order = world.order(S.INITIATED)
    revoked, revoked_secret = issue_api_token(actor=world.pm, name="old")
    revoke_api_token(actor=world.pm, token_id=revoked.id)
    with time_machine.travel(T0, tick=False):
        _, expired_secret = issue_api_token(actor=world.pm, name="short", days=1)
    before = counts()
    for secret in (revoked_secret, expired_secret, "eoms_0000_forged", "not-even-close"):
        api = Api(secret=secret)
        assert_problem(api.get(BASE), 401, "unauthenticated")
        assert_problem(api.post(f"{BASE}/{order.id}/start_quotation"), 401, "unauthenticated")
        assert_problem(api.upload(order.id, "a.pdf", PDF), 401, "unauthenticated")
    assert_problem(Api().get(f"{BASE}/{order.id}"), 401, "unauthenticated")
    assert counts() == before


def test_session_writes_need_the_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.pm)
    body = json.dumps({"project_id": str(world.project.id), "title": "管网", "contract_amount": "1.00"})
    before = counts()
    assert_problem(client.post(BASE, body, "application/json"), 403, "csrf_failed")
    assert counts() == before
    assert client.get(BASE).status_code == 200
    secret = "csrfsecretcsrfsecretcsrfsecret12"
    client.cookies["csrftoken"] = secret
    assert client.post(BASE, body, "application/json", HTTP_X_CSRFTOKEN=secret).status_code == 201
    # A bearer token is not a browser's ambient credential: no CSRF token needed.
    _, token = issue_api_token(actor=world.pm, name="erp")
    strict = Client(enforce_csrf_checks=True)
    assert strict.post(BASE, body, "application/json", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 201
