"""Orders API: list with filters, detail with history, create, update, one POST per transition,
attachments and the subcontract tree. Every endpoint authenticates; scope is the selectors'."""

import uuid
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace

from django.http import FileResponse, HttpRequest
from django.utils.translation import gettext as _
from ninja import File, Form, Query, Router, Schema
from ninja.files import UploadedFile
from pydantic import Field

from eoms.accounts.selectors import get_active_user
from eoms.core.api import ProblemSchema, Ref, UserRef, render
from eoms.core.errors import ValidationFailed
from eoms.masterdata.selectors import access_project

from . import policies, selectors, services
from .attachments import inspect_upload
from .models import Attachment, AttachmentKind, Order, OrderKind
from .state import TRANSITIONS, OrderState

router = Router(tags=["orders"])

ERRORS = {400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 422: ProblemSchema}


class OrderOut(Schema):
    id: uuid.UUID
    number: str
    title: str
    state: OrderState
    state_label: str
    kind: OrderKind
    region: str
    project: Ref
    customer: Ref
    parent_id: uuid.UUID | None
    level: int
    contract_amount: Decimal
    estimated_cost: Decimal | None = Field(description="The quotation's cost estimate, yuan; null when not given")
    margin: Decimal | None = Field(
        description="Gross margin in percent, (amount - estimated cost) / amount, e.g. 18.50; null without a cost"
    )
    tax_rate: Decimal
    tax_amount: Decimal
    net_amount: Decimal
    stage_owner: UserRef | None
    stage_deadline: datetime | None
    overdue: bool
    created_at: datetime
    updated_at: datetime
    version: int


class HistoryOut(Schema):
    transition: str
    from_state: str
    to_state: str
    actor: UserRef
    at: datetime
    comment: str
    attachment_ids: list[uuid.UUID]


class OrderAttachmentOut(Schema):
    id: uuid.UUID
    kind: AttachmentKind
    original_name: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: UserRef
    created_at: datetime
    transition: str | None


class OrderActionOut(Schema):
    name: str
    label: str
    to_state: OrderState
    comment_required: bool


class OrderDetailOut(OrderOut):
    description: str
    cancel_reason: str
    history: list[HistoryOut]
    attachments: list[OrderAttachmentOut]
    actions: list[OrderActionOut]
    editable_fields: list[str]


class OrderMovedOut(OrderOut):
    """What a transition answers: the order as it now is, the action just taken and what may follow.
    The whole history and the files are the order's detail (GET /orders/{id}); a transition does not
    read them again (bench/README.md, "transition")."""

    description: str
    cancel_reason: str
    entry: HistoryOut = Field(description="The action just taken, as the order's history now records it")
    actions: list[OrderActionOut]
    editable_fields: list[str]


class OrderPage(Schema):
    count: int | None = Field(description="Orders matching the filters; null on keyset pages (cursor given)")
    page: int | None = Field(description="The page number; null on keyset pages")
    page_size: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters and ordering) for the next page; null on the last"
    )
    results: list[OrderOut]


class OrderCreateIn(Schema):
    project_id: uuid.UUID
    title: str = Field(max_length=200)
    contract_amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    estimated_cost: Decimal | None = Field(
        None, ge=0, max_digits=12, decimal_places=2, description="The quotation's cost estimate, yuan"
    )
    tax_rate: Decimal = Decimal("0.09")
    kind: OrderKind = OrderKind.CONSTRUCTION
    description: str = Field("", max_length=20000)
    parent_id: uuid.UUID | None = None
    stage_owner_id: uuid.UUID | None = None


class OrderUpdateIn(Schema):
    version: int | None = Field(None, description="The version you read; a newer one on the server answers 409")
    title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=20000)
    contract_amount: Decimal | None = Field(None, gt=0, max_digits=12, decimal_places=2)
    estimated_cost: Decimal | None = Field(
        None, ge=0, max_digits=12, decimal_places=2, description="The quotation's cost estimate; null clears it"
    )
    tax_rate: Decimal | None = None
    kind: OrderKind | None = None
    stage_owner_id: uuid.UUID | None = None
    stage_deadline: datetime | None = None


class TransitionIn(Schema):
    comment: str = Field("", max_length=4000)
    version: int | None = Field(None, description="The version you read; a newer one on the server answers 409")
    attachment_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Files already uploaded to the order to show with this action"
    )
    picked: dict[str, uuid.UUID] = Field(
        default_factory=dict,
        description="submit only: the approver picked for each approval node whose approvers are picked at "
        "submission, by node id",
    )


class OrderFilterIn(Schema):
    state: list[OrderState] | None = None
    project: uuid.UUID | None = None
    customer: uuid.UUID | None = None
    region: str | None = None
    kind: OrderKind | None = None
    stage_owner: uuid.UUID | None = None
    parent: uuid.UUID | None = None
    amount_min: Decimal | None = Field(None, ge=0)
    amount_max: Decimal | None = Field(None, ge=0)
    created_from: date | None = None
    created_to: date | None = None
    updated_from: date | None = None
    updated_to: date | None = None
    overdue: bool | None = None
    q: str = Field("", max_length=100)
    ordering: str = Field("-created", pattern=r"^-?(created|amount|deadline|number|updated)$")
    page: int = Field(1, ge=1, le=100000)
    page_size: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(
        None,
        max_length=500,
        description="Keyset pagination: empty for the first page, then the previous page's next_cursor. "
        "Constant cost at any depth and stable under inserts; no count, `page` is ignored",
    )


class TreeNode(Schema):
    id: uuid.UUID
    number: str
    title: str
    state: OrderState
    level: int
    contract_amount: Decimal
    children: list["TreeNode"]


def _user(u) -> dict | None:
    return None if u is None else {"id": u.id, "username": u.username, "display_name": u.display_name or u.username}


def order_out(order: Order) -> dict:
    return {
        "id": order.id,
        "number": order.number,
        "title": order.title,
        "state": order.state,
        "state_label": str(OrderState(order.state).label),
        "kind": order.kind,
        "region": order.region,
        "project": {"id": order.project_id, "name": str(order.project)},
        "customer": {"id": order.customer_id, "name": order.customer.name},
        "parent_id": order.parent_id,
        "level": order.level,
        "contract_amount": order.contract_amount,
        "estimated_cost": order.estimated_cost,
        "margin": order.margin,
        "tax_rate": order.tax_rate,
        "tax_amount": order.tax_amount,
        "net_amount": order.net_amount,
        "stage_owner": _user(order.stage_owner),
        "stage_deadline": order.stage_deadline,
        "overdue": order.is_overdue,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "version": order.version,
    }


# The list reads these columns only (no model objects, no columns nobody shows) and renders them without
# validating its own output against OrderPage again: a page of 50 orders cost about 45 ms of which the
# model objects and their time stamps took 20 and the response schema's validation 8 (bench/README.md,
# "reports"). order_out() is shared with the detail, so both give the same fields the same way.
LIST_COLUMNS = (
    "id", "number", "title", "state", "kind", "region", "project_id", "project__code", "project__name",
    "customer_id", "customer__name", "parent_id", "level", "contract_amount", "estimated_cost", "tax_rate",
    "stage_owner_id", "stage_owner__username", "stage_owner__display_name", "stage_deadline", "created_at",
    "updated_at", "version",
)  # fmt: skip


class _ProjectRef(SimpleNamespace):
    def __str__(self):  # as masterdata.Project.__str__
        return f"{self.code} {self.name}"


class OrderRow:
    """A row of LIST_COLUMNS with the attributes order_out() reads of an Order, and Order's own
    derived amounts and overdue flag."""

    tax_amount = Order.tax_amount
    net_amount = Order.net_amount
    margin = Order.margin
    is_overdue = Order.is_overdue

    def __init__(self, row: dict):
        self.__dict__.update(row)
        self.pk = row["id"]
        self.project = _ProjectRef(code=row["project__code"], name=row["project__name"])
        self.customer = SimpleNamespace(name=row["customer__name"])
        self.stage_owner = (
            SimpleNamespace(
                id=row["stage_owner_id"],
                username=row["stage_owner__username"],
                display_name=row["stage_owner__display_name"],
            )
            if row["stage_owner_id"]
            else None
        )


def _attachment_out(a: Attachment, transitions: dict) -> dict:
    return {
        "id": a.id,
        "kind": a.kind,
        "original_name": a.original_name,
        "content_type": a.content_type,
        "size": a.size,
        "sha256": a.sha256,
        "uploaded_by": _user(a.uploaded_by),
        "created_at": a.created_at,
        "transition": transitions.get(a.history_id),
    }


def _actions(actor, order: Order) -> dict:
    return {
        "actions": [
            {"name": t.name, "label": str(t.label), "to_state": t.target, "comment_required": t.comment_required}
            for t in policies.available_transitions(actor, order)
        ],
        "editable_fields": sorted(policies.editable_fields(actor, order)),
    }


def moved_out(actor, order: Order) -> dict:
    """The answer of a transition, from the order the service moved (no statement of its own)."""
    entry, files = order.last_entry
    return {
        **order_out(order),
        "description": order.description,
        "cancel_reason": order.cancel_reason,
        "entry": {
            "transition": entry.transition,
            "from_state": entry.from_state,
            "to_state": entry.to_state,
            "actor": _user(entry.actor),
            "at": entry.at,
            "comment": entry.comment,
            "attachment_ids": files,
        },
        **_actions(actor, order),
    }


def order_detail(actor, order: Order) -> dict:
    history = selectors.order_history(order)
    names = {h.id: h.transition for h in history}
    attachments = list(order.attachments.select_related("uploaded_by"))
    shown_with = defaultdict(list)  # history id -> ids of the files shown with that action
    for a in attachments:
        if a.history_id is not None:
            shown_with[a.history_id].append(a.id)
    return {
        **order_out(order),
        "description": order.description,
        "cancel_reason": order.cancel_reason,
        "history": [
            {
                "transition": h.transition,
                "from_state": h.from_state,
                "to_state": h.to_state,
                "actor": _user(h.actor),
                "at": h.at,
                "comment": h.comment,
                "attachment_ids": shown_with[h.id],
            }
            for h in history
        ],
        "attachments": [_attachment_out(a, names) for a in attachments],
        **_actions(actor, order),
    }


@router.get("", response={200: OrderPage, 400: ProblemSchema, 422: ProblemSchema}, summary="List orders in your scope")
def list_orders(request: HttpRequest, filters: Query[OrderFilterIn]):
    f = filters
    qs = selectors.list_orders(
        actor=request.auth,
        filters=selectors.OrderFilters(
            state=[s.value for s in f.state] if f.state else None,
            project=f.project,
            customer=f.customer,
            region=f.region,
            kind=f.kind,
            stage_owner=f.stage_owner,
            parent=f.parent,
            amount_min=f.amount_min,
            amount_max=f.amount_max,
            created_from=f.created_from,
            created_to=f.created_to,
            updated_from=f.updated_from,
            updated_to=f.updated_to,
            overdue=f.overdue,
            q=f.q,
            ordering=f.ordering,
        ),
    )
    keyset = f.cursor is not None
    page = (selectors.after_cursor(qs, f.ordering, f.cursor) if f.cursor else qs) if keyset else qs
    start = 0 if keyset else (f.page - 1) * f.page_size
    rows = [OrderRow(r) for r in page.values(*LIST_COLUMNS)[start : start + f.page_size + 1]]
    more = len(rows) > f.page_size
    rows = rows[: f.page_size]
    body = {
        "count": None if keyset else qs.count(),
        "page": None if keyset else f.page,
        "page_size": f.page_size,
        "next_cursor": selectors.encode_cursor(f.ordering, rows[-1]) if more else None,
        "results": [order_out(o) for o in rows],
    }
    return render(request, body)


@router.post("", response={201: OrderDetailOut, **ERRORS}, summary="Create an order (立项)")
def create_order(request: HttpRequest, payload: OrderCreateIn):
    actor = request.auth
    project = access_project(actor, payload.project_id)
    owner = None
    if payload.stage_owner_id:
        owner = get_active_user(payload.stage_owner_id)
        if owner is None:
            raise ValidationFailed(errors=[{"field": "stage_owner_id", "message": _("No such active user.")}])
    order = services.create_order(
        actor=actor,
        project=project,
        title=payload.title,
        contract_amount=payload.contract_amount,
        estimated_cost=payload.estimated_cost,
        tax_rate=payload.tax_rate,
        kind=payload.kind,
        description=payload.description,
        parent_id=payload.parent_id,
        stage_owner=owner,
    )
    return 201, order_detail(actor, selectors.access_order(actor, order.id))


@router.get("/{order_id}", response={200: OrderDetailOut, 404: ProblemSchema}, summary="An order with its history")
def get_order(request: HttpRequest, order_id: uuid.UUID):
    return order_detail(request.auth, selectors.access_order(request.auth, order_id))


@router.patch(
    "/{order_id}",
    response={200: OrderDetailOut, **ERRORS},
    summary="Change fields the order's state allows (see editable_fields)",
)
def update_order(request: HttpRequest, order_id: uuid.UUID, payload: OrderUpdateIn):
    data = payload.dict(exclude_unset=True)
    version = data.pop("version", None)
    if "stage_owner_id" in data:
        owner_id = data.pop("stage_owner_id")
        owner = get_active_user(owner_id) if owner_id else None
        if owner_id and owner is None:
            raise ValidationFailed(errors=[{"field": "stage_owner_id", "message": _("No such active user.")}])
        data["stage_owner"] = owner
    for required in ("title", "contract_amount", "tax_rate", "kind"):
        if required in data and data[required] is None:
            raise ValidationFailed(errors=[{"field": required, "message": _("May not be null.")}])
    order = services.update_order(actor=request.auth, order_id=order_id, changes=data, expected_version=version)
    return order_detail(request.auth, selectors.access_order(request.auth, order.id))


def _transition_endpoint(name: str):
    def endpoint(request: HttpRequest, order_id: uuid.UUID, payload: TransitionIn):
        order = services.transition_order(
            actor=request.auth,
            order_id=order_id,
            name=name,
            comment=payload.comment,
            expected_version=payload.version,
            attachment_ids=payload.attachment_ids,
            picked={k: str(v) for k, v in payload.picked.items()} or None,
        )
        return render(request, moved_out(request.auth, order))

    endpoint.__name__ = f"transition_{name}"
    return endpoint


for _t in TRANSITIONS:
    if _t.system:  # approve/reject/return/withdraw: decided through /approvals/tasks, not here
        continue
    _sources = ", ".join(_t.sources)
    router.post(
        f"/{{order_id}}/{_t.name}",
        response={200: OrderMovedOut, **ERRORS},
        summary=f"{_t.name}: {_sources} → {_t.target}",
        description=(
            "Answers the order as it now is, with the action just taken (`entry`); its whole history and "
            "files are GET /orders/{order_id}. "
            f"Roles: {', '.join(sorted(_t.roles))}."
            + (" A comment is required." if _t.comment_required else "")
            + "".join(f" Needs {g.description} ({g.code})." for g in _t.guards)
        ),
        operation_id=f"orders_{_t.name}",
    )(_transition_endpoint(_t.name))


@router.get(
    "/{order_id}/tree", response={200: TreeNode, 404: ProblemSchema}, summary="The subcontract tree under an order"
)
def order_tree(request: HttpRequest, order_id: uuid.UUID):
    order = selectors.access_order(request.auth, order_id)

    def node(n):
        o = n["order"]
        return {
            "id": o.id,
            "number": o.number,
            "title": o.title,
            "state": o.state,
            "level": o.level,
            "contract_amount": o.contract_amount,
            "children": [node(c) for c in n["children"]],
        }

    return node(selectors.order_tree(request.auth, order))


@router.get(
    "/{order_id}/attachments", response={200: list[OrderAttachmentOut], 404: ProblemSchema}, summary="Files on an order"
)
def list_attachments(request: HttpRequest, order_id: uuid.UUID):
    order = selectors.access_order(request.auth, order_id)
    names = dict(order.history.values_list("id", "transition"))
    return [_attachment_out(a, names) for a in order.attachments.select_related("uploaded_by")]


@router.post(
    "/{order_id}/attachments",
    response={201: OrderAttachmentOut, **ERRORS},
    summary="Upload a file (type recognised by content; size limited)",
)
def upload_attachment(
    request: HttpRequest,
    order_id: uuid.UUID,
    file: File[UploadedFile],
    kind: Form[AttachmentKind] = AttachmentKind.OTHER,
):
    upload = inspect_upload(file.name or "file", file)
    attachment = services.attach_file(actor=request.auth, order_id=order_id, kind=kind, upload=upload)
    return 201, _attachment_out(attachment, {})


@router.get(
    "/{order_id}/attachments/{attachment_id}",
    response={404: ProblemSchema},
    summary="Download a file",
    openapi_extra={"responses": {"200": {"description": "The file"}}},
)
def download_attachment(request: HttpRequest, order_id: uuid.UUID, attachment_id: uuid.UUID):
    from .errors import OrderNotFound

    order = selectors.access_order(request.auth, order_id)
    attachment = order.attachments.filter(pk=attachment_id).first()
    if attachment is None:
        raise OrderNotFound(_("No such attachment on this order."))
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=True,
        filename=attachment.original_name,
        content_type=attachment.content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
