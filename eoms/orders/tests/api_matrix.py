"""Who may call each orders endpoint (see eoms.testing.matrix). Every request targets an order of
world.project, prepared in the state the endpoint needs; the outsider manages another project."""

from django.core.files.uploadedfile import SimpleUploadedFile

from eoms.orders import services
from eoms.orders.attachments import inspect_upload
from eoms.orders.state import OrderState
from eoms.testing.matrix import expect
from eoms.testing.world import PDF

S = OrderState
BASE = "/api/v1/orders"
EVERYONE = ("admin", "project_manager", "approver", "field_engineer", "finance", "auditor")


def _order(state=S.INITIATED, attach: str | None = None):
    def make(world):
        order = world.order(state)
        if attach:
            upload = inspect_upload(f"{attach}.pdf", PDF)
            services.attach_file(actor=world.pm, order_id=order.id, kind=attach, upload=upload)
        return order

    return make


def _get(suffix: str = ""):
    return lambda world: {"path": f"{BASE}/{world.order().id}{suffix}"}


def _transition(name: str, state: str, attach: str | None = None, comment: str = ""):
    def request(world):
        order = _order(state, attach)(world)
        return {"path": f"{BASE}/{order.id}/{name}", "json": {"comment": comment, "version": order.version}}

    return request


def _download(world):
    order = world.order()
    attachment = services.attach_file(
        actor=world.pm, order_id=order.id, kind="drawing", upload=inspect_upload("drawing.pdf", PDF)
    )
    return {"path": f"{BASE}/{order.id}/attachments/{attachment.id}"}


def _upload(world):
    order = world.order()
    return {
        "path": f"{BASE}/{order.id}/attachments",
        "multipart": {"file": SimpleUploadedFile("contract.pdf", PDF), "kind": "drawing"},
    }


def _create(world):
    return {
        "path": BASE,
        "json": {"project_id": str(world.project.id), "title": "雨污分流改造", "contract_amount": "880000.00"},
    }


PM_ADMIN = ("project_manager", "admin")

# (transition, source state, file its guard needs, comment, who may)
TRANSITION_RULES = [
    ("start_quotation", S.INITIATED, None, "", PM_ADMIN),
    ("submit", S.QUOTING, None, "", PM_ADMIN),
    ("revise", S.REJECTED, None, "", PM_ADMIN),
    ("sign", S.APPROVED, "signed_contract", "", PM_ADMIN),
    ("start_execution", S.SIGNED, None, "", ("project_manager", "field_engineer")),
    ("hold", S.IN_EXECUTION, None, "雨季停工", PM_ADMIN),
    ("resume", S.ON_HOLD, None, "", PM_ADMIN),
    ("request_acceptance", S.IN_EXECUTION, None, "", ("project_manager", "field_engineer")),
    ("accept", S.PENDING_ACCEPTANCE, "acceptance_report", "", ("project_manager",)),
    ("reject_acceptance", S.PENDING_ACCEPTANCE, None, "渗漏返工", ("project_manager",)),
    ("start_settlement", S.ACCEPTED, None, "", ("finance", "project_manager")),
    ("settle", S.SETTLING, None, "", ("finance",)),
    # After signing only the administrator cancels.
    ("cancel", S.SIGNED, None, "业主取消", ("admin",)),
]

ENDPOINTS = {
    ("GET", BASE): {"request": lambda world: {"path": BASE}, "expect": expect(200, EVERYONE, outsider=200)},
    ("POST", BASE): {"request": _create, "expect": expect(201, PM_ADMIN)},
    ("GET", f"{BASE}/{{order_id}}"): {"request": _get(), "expect": expect(200, EVERYONE)},
    ("PATCH", f"{BASE}/{{order_id}}"): {
        "request": lambda world: {"path": f"{BASE}/{world.order().id}", "json": {"title": "雨污分流改造（二期）"}},
        "expect": expect(200, PM_ADMIN),
    },
    ("GET", f"{BASE}/{{order_id}}/tree"): {"request": _get("/tree"), "expect": expect(200, EVERYONE)},
    ("GET", f"{BASE}/{{order_id}}/attachments"): {"request": _get("/attachments"), "expect": expect(200, EVERYONE)},
    ("POST", f"{BASE}/{{order_id}}/attachments"): {
        "request": _upload,
        # On an INITIATED order: who may move it on or edit it, and field engineers.
        "expect": expect(201, ("admin", "project_manager", "field_engineer")),
    },
    ("GET", f"{BASE}/{{order_id}}/attachments/{{attachment_id}}"): {
        "request": _download,
        "expect": expect(200, EVERYONE),
    },
    **{
        ("POST", f"{BASE}/{{order_id}}/{name}"): {
            "request": _transition(name, state, attach, comment),
            "expect": expect(200, allowed),
        }
        for name, state, attach, comment, allowed in TRANSITION_RULES
    },
}
