"""Every write of orders: create, update, transition, attach. One transaction each, each leaving
exactly one audit entry and one outbox message per change (and one history row per transition)."""

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from eoms.accounts.roles import ProjectRole, Role
from eoms.accounts.selectors import (
    first_member_with_role,
    is_read_only,
    members_with_role,
    project_ids_in_scope,
    users_with_role,
)
from eoms.core.counters import next_value
from eoms.core.events import emit
from eoms.core.rows import Insert, Select, Update

from . import events, policies, summary
from .attachments import Upload
from .errors import (
    GuardFailed,
    InvalidTransition,
    OrderNotFound,
    OrderPermissionDenied,
    OrderValidationFailed,
    StaleOrder,
)
from .models import Attachment, AttachmentKind, Order, OrderHistory, OrderKind, TaxRate
from .selectors import access_order
from .state import BY_NAME, DEFAULT_STAGE_DAYS, OrderState, Transition, transitions_from

__all__ = [
    "apply_approval_outcome",
    "set_approval_owner",
    "update_order_by_approver",
    "SUBJECT_TYPE",
    "create_order",
    "update_order",
    "transition_order",
    "attach_file",
    "add_attachment",
    "MAX_LEVEL",
    "MAX_AMOUNT",
]

MAX_LEVEL = 3
SUBJECT_TYPE = "orders.order"  # what the approval engine calls an order
MAX_AMOUNT = Decimal("9999999999.99")  # ten billion yuan less a cent: larger is a typo


def _field_error(field: str, message: str) -> OrderValidationFailed:
    return OrderValidationFailed(message, errors=[{"field": field, "message": message}])


def _clean_amount(value) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise _field_error("contract_amount", _("Enter an amount in yuan, e.g. 1250000.00."))
    if not amount.is_finite() or amount <= 0:
        raise _field_error("contract_amount", _("The amount must be greater than zero."))
    if amount > MAX_AMOUNT:
        raise _field_error("contract_amount", _("The amount may not exceed %(max)s.") % {"max": f"{MAX_AMOUNT:,}"})
    if amount != amount.quantize(Decimal("0.01")):
        raise _field_error("contract_amount", _("Amounts have at most two decimal places."))
    return amount.quantize(Decimal("0.01"))


def _clean_cost(value) -> Decimal | None:
    """The quotation's estimated cost: empty (None or blank) clears it; otherwise yuan, zero or
    more, at most two decimals and no more than the largest amount."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        cost = Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise _field_error("estimated_cost", _("Enter a cost in yuan, e.g. 1050000.00."))
    if not cost.is_finite() or cost < 0:
        raise _field_error("estimated_cost", _("The estimated cost may not be negative."))
    if cost > MAX_AMOUNT:
        raise _field_error(
            "estimated_cost", _("The estimated cost may not exceed %(max)s.") % {"max": f"{MAX_AMOUNT:,}"}
        )
    if cost != cost.quantize(Decimal("0.01")):
        raise _field_error("estimated_cost", _("Amounts have at most two decimal places."))
    return abs(cost).quantize(Decimal("0.01"))  # abs: "-0" is zero, not a negative cost


def _clean_tax_rate(value) -> Decimal:
    try:
        rate = str(Decimal(str(value)).quantize(Decimal("0.01")))
    except (InvalidOperation, ValueError, TypeError):  # "abc", "NaN", None: not a rate at all
        rate = ""
    if rate not in TaxRate.values:
        raise _field_error(
            "tax_rate", _("Tax rate must be one of %(choices)s.") % {"choices": ", ".join(TaxRate.values)}
        )
    return Decimal(rate)


def _clean_text(field: str, value, *, max_length: int, required: bool = False) -> str:
    text = (value or "").strip() if isinstance(value, str) or value is None else None
    if text is None:
        raise _field_error(field, _("Must be text."))
    if required and not text:
        raise _field_error(field, _("This field is required."))
    if "\x00" in text:  # PostgreSQL cannot store it; no one types it
        raise _field_error(field, _("Contains a NUL character."))
    if len(text) > max_length:
        raise _field_error(field, _("At most %(max)d characters.") % {"max": max_length})
    return text


def _stage_deadline(state: str, start: datetime) -> datetime | None:
    days = settings.STAGE_DAYS.get(state, DEFAULT_STAGE_DAYS.get(state))
    return start + timedelta(days=days) if days else None


def _stage_owner(order: Order, rule: str, actor):
    """Who owns the stage an order enters, by the transition's owner rule."""
    if rule == "none":
        return None
    if rule == "actor":
        return actor
    if rule == "approver":
        return (
            members_with_role(order.project_id, ProjectRole.VIEWER).filter(groups__name=Role.APPROVER).first()
            or users_with_role(Role.APPROVER).filter(memberships__project_id=order.project_id).first()
            or users_with_role(Role.APPROVER).order_by("username").first()
        )
    if rule == "finance":
        return (
            users_with_role(Role.FINANCE).filter(memberships__project_id=order.project_id).first()
            or users_with_role(Role.FINANCE).order_by("username").first()
        )
    if rule == "engineer":
        engineer = first_member_with_role(order.project_id, ProjectRole.ENGINEER)
        if engineer:
            return engineer
    return order.project.manager or first_member_with_role(order.project_id, ProjectRole.PM)


def _check_owner(project_id, owner) -> None:
    """A stage owner must be able to see the order: a member of its project, or admin/auditor scope."""
    if owner is None:
        return
    scope = project_ids_in_scope(owner)
    if is_read_only(owner) or (scope is not None and project_id not in scope):
        raise _field_error(
            "stage_owner", _("%(user)s is not a member of the order's project.") % {"user": owner.username}
        )


def _room_in_parent(parent: Order, *, exclude_id=None) -> Decimal:
    taken = parent.children.exclude(state=OrderState.CANCELLED).exclude(pk=exclude_id).aggregate(
        total=Sum("contract_amount")
    )["total"] or Decimal("0")
    return parent.contract_amount - taken


@transaction.atomic
def create_order(
    *,
    actor,
    project,
    title: str,
    contract_amount,
    estimated_cost=None,
    customer=None,
    kind: str = OrderKind.CONSTRUCTION,
    tax_rate=Decimal("0.09"),
    description: str = "",
    parent_id=None,
    stage_owner=None,
) -> Order:
    """Open an order (立项) on `project`. A child order (`parent_id`) must be on the same project, fit in
    what is left of its parent's amount, and not go deeper than three levels. `estimated_cost` is
    the quotation's cost estimate (optional; the gross margin approval conditions test)."""
    if not policies.can_create_order(actor, project.id):
        scope_error = OrderPermissionDenied(
            _("You may not create orders on project %(code)s.") % {"code": project.code}
        )
        raise scope_error
    title = _clean_text("title", title, max_length=200, required=True)
    _check_owner(project.id, stage_owner)
    description = _clean_text("description", description, max_length=20000)
    amount = _clean_amount(contract_amount)
    cost = _clean_cost(estimated_cost)
    rate = _clean_tax_rate(tax_rate)
    if kind not in OrderKind.values:
        raise _field_error("kind", _("Type must be one of %(choices)s.") % {"choices": ", ".join(OrderKind.values)})
    customer = customer or project.customer
    if customer.pk != project.customer_id:
        raise _field_error("customer", _("The customer must be the project's customer."))
    parent, level = None, 1
    if parent_id:
        try:
            parent = access_order(actor, parent_id, for_update=True)  # lock: children are sized against it
        except OrderNotFound:
            raise _field_error("parent_id", _("No such parent order."))
        if parent.project_id != project.id:
            raise _field_error("parent_id", _("A subcontract order belongs to its parent's project."))
        if parent.state in OrderState.terminal():
            raise _field_error(
                "parent_id",
                _("Order %(number)s is %(state)s; it takes no new subcontracts.")
                % {"number": parent.number, "state": parent.state},
            )
        level = parent.level + 1
        if level > MAX_LEVEL:
            raise _field_error("parent_id", _("Orders nest at most three levels (main, sub, sub-sub)."))
        room = _room_in_parent(parent)
        if amount > room:
            raise _field_error(
                "contract_amount",
                _("Order %(number)s has %(room)s left for subcontracts; %(amount)s exceeds it.")
                % {"number": parent.number, "room": f"{room:,.2f}", "amount": f"{amount:,.2f}"},
            )
    now = timezone.now()
    year = timezone.localtime(now).year
    number = f"ORD-{year}-{next_value(f'order:{year}'):06d}"
    order = Order.objects.create(
        number=number,
        title=title,
        customer=customer,
        project=project,
        kind=kind,
        region=project.region,
        contract_amount=amount,
        estimated_cost=cost,
        tax_rate=rate,
        description=description,
        parent=parent,
        level=level,
        state=OrderState.INITIATED,
        stage_owner=stage_owner or project.manager or actor,
        stage_entered_at=now,
        stage_deadline=_stage_deadline(OrderState.INITIATED, now),
        created_by=actor,
        updated_by=actor,
    )
    OrderHistory.objects.create(
        order=order, transition="create", from_state="", to_state=order.state, actor=actor, at=now, comment=""
    )
    emit(
        events.OrderCreated(
            order_id=order.id,
            number=number,
            project_id=project.id,
            parent_id=parent.id if parent else None,
            amount=str(amount),
        ),
        actor=actor,
        object_repr=number,
        changes={
            "title": title,
            "contract_amount": amount,
            "estimated_cost": cost,
            "tax_rate": rate,
            "kind": kind,
            "project": project.code,
            "parent": parent.number if parent else None,
        },
    )
    summary.bump({summary.bucket(order): (1, amount, 0, 0)})
    return order


@transaction.atomic
def update_order(*, actor, order_id, changes: dict, expected_version: int | None = None) -> Order:
    """Change fields of an order; only the fields its state allows (state.EDITABLE_FIELDS)."""
    order = access_order(actor, order_id, "view", for_update=True)
    if expected_version is not None and expected_version != order.version:
        raise StaleOrder(
            _("Order %(number)s is at version %(version)s, not %(expected)s; reload it.")
            % {"number": order.number, "version": order.version, "expected": expected_version}
        )
    allowed = policies.editable_fields(actor, order)
    if not allowed:
        raise OrderPermissionDenied(
            _("You may not edit order %(number)s in state %(state)s.") % {"number": order.number, "state": order.state}
        )
    refused = sorted(set(changes) - allowed)
    if refused:
        raise OrderValidationFailed(
            _("Order %(number)s is %(state)s; these fields cannot change now: %(fields)s.")
            % {"number": order.number, "state": order.state, "fields": ", ".join(refused)},
            errors=[
                {"field": f, "message": _("Not editable in state %(state)s.") % {"state": order.state}} for f in refused
            ],
        )
    cleaned = {}
    for field, value in changes.items():
        if field == "title":
            cleaned[field] = _clean_text("title", value, max_length=200, required=True)
        elif field == "description":
            cleaned[field] = _clean_text("description", value, max_length=20000)
        elif field == "contract_amount":
            cleaned[field] = _clean_amount(value)
            _check_amount_in_tree(order, cleaned[field])
        elif field == "estimated_cost":
            cleaned[field] = _clean_cost(value)
        elif field == "tax_rate":
            cleaned[field] = _clean_tax_rate(value)
        elif field == "kind":
            if value not in OrderKind.values:
                raise _field_error(
                    "kind", _("Type must be one of %(choices)s.") % {"choices": ", ".join(OrderKind.values)}
                )
            cleaned[field] = value
        elif field == "stage_deadline":
            if value is not None and (not isinstance(value, datetime) or timezone.is_naive(value)):
                raise _field_error("stage_deadline", _("Give a date and time with its time zone."))
            cleaned[field] = value
        elif field == "stage_owner":
            _check_owner(order.project_id, value)
            cleaned[field] = value
    diff = {}
    counted_before = (summary.bucket(order), order.contract_amount)
    for field, value in cleaned.items():
        before = getattr(order, field)
        if before != value:
            diff[field] = [str(before) if before is not None else None, str(value) if value is not None else None]
            setattr(order, field, value)
    if not diff:
        return order
    updated = Order.objects.filter(pk=order.pk, version=order.version).update(
        **cleaned, version=F("version") + 1, updated_by=actor, updated_at=timezone.now()
    )
    if not updated:
        raise StaleOrder(_("Order %(number)s was changed by someone else; reload it.") % {"number": order.number})
    emit(
        events.OrderUpdated(order_id=order.id, number=order.number, fields=tuple(sorted(diff))),
        actor=actor,
        object_repr=order.number,
        changes=diff,
    )
    _recount_moved(order.id, counted_before, (summary.bucket(order), order.contract_amount))
    order.refresh_from_db()
    return order


def _recount_moved(order_id, before, after) -> None:
    """The summary after an order's amount or type changed: (bucket, amount) before and after."""
    if before != after:
        summary.bump(summary.move_changes(order_id, before, after))


def _check_amount_in_tree(order: Order, amount: Decimal) -> None:
    if order.parent_id:
        parent = Order.objects.select_for_update().get(pk=order.parent_id)
        room = _room_in_parent(parent, exclude_id=order.pk)
        if amount > room:
            raise _field_error(
                "contract_amount",
                _("Order %(number)s has %(room)s left for subcontracts; %(amount)s exceeds it.")
                % {"number": parent.number, "room": f"{room:,.2f}", "amount": f"{amount:,.2f}"},
            )
    children_total = order.children.exclude(state=OrderState.CANCELLED).aggregate(total=Sum("contract_amount"))[
        "total"
    ] or Decimal("0")
    if amount < children_total:
        raise _field_error(
            "contract_amount",
            _("Its subcontracts already take %(total)s; the amount cannot be less.")
            % {"total": f"{children_total:,.2f}"},
        )


def _explain_illegal(order: Order, transition: Transition) -> str:
    allowed = ", ".join(t.name for t in transitions_from(order.state)) or _("none")
    sources = ", ".join(transition.sources)
    return _(
        "Order %(number)s is %(state)s; '%(action)s' is possible only from %(sources)s. Possible now: %(allowed)s."
    ) % {
        "number": order.number,
        "state": order.state,
        "action": transition.name,
        "sources": sources,
        "allowed": allowed,
    }


def transition_order(
    *,
    actor,
    order_id,
    name: str,
    comment: str = "",
    expected_version: int | None = None,
    attachments: list[tuple[str, Upload]] = (),
    attachment_ids: list = (),
    picked: dict | None = None,
) -> Order:
    """Take transition `name` on an order (state.TRANSITIONS). Illegal from the current state or
    stale (someone else moved it first): 409. Not allowed for this actor: 403. Guard not met: 409 with
    the guard's code. Attachments given here are stored with the transition, atomically: files of a
    failed transition are removed again. `attachment_ids` names files already on the order (uploaded
    earlier and not yet part of a transition) to show with this transition."""
    stored: list[str] = []
    try:
        return _transition(
            actor=actor,
            order_id=order_id,
            name=name,
            comment=comment,
            expected_version=expected_version,
            attachments=attachments,
            attachment_ids=attachment_ids,
            stored=stored,
            picked=picked,
        )
    except BaseException:
        for path in stored:
            Attachment.file.field.storage.delete(path)
        raise


@transaction.atomic
def _transition(
    *, actor, order_id, name, comment, expected_version, attachments, attachment_ids, stored, picked=None
) -> Order:
    transition = BY_NAME.get(name)
    order = access_order(actor, order_id)
    if transition is None:
        raise InvalidTransition(
            _("Unknown action '%(action)s'. Possible now: %(allowed)s.")
            % {"action": name, "allowed": ", ".join(t.name for t in transitions_from(order.state)) or _("none")}
        )
    if order.state not in transition.sources:
        raise InvalidTransition(_explain_illegal(order, transition), current_state=order.state)
    if transition.system:
        raise OrderPermissionDenied(
            _("Orders are approved or rejected through their approval flow: decide the task in My tasks.")
        )
    if not policies.can_take_transition(actor, order, transition):
        raise OrderPermissionDenied(
            _("You may not '%(action)s' order %(number)s.") % {"action": transition.name, "number": order.number}
        )
    if expected_version is not None and expected_version != order.version:
        raise StaleOrder(
            _("Order %(number)s is at version %(version)s, not %(expected)s; reload it.")
            % {"number": order.number, "version": order.version, "expected": expected_version},
            current_state=order.state,
            current_version=order.version,
        )
    comment = _clean_text("comment", comment, max_length=4000, required=transition.comment_required)
    added = [
        add_attachment(actor=actor, order=order, kind=kind, upload=upload, stored=stored)
        for kind, upload in attachments
    ]
    if attachment_ids:
        wanted = {str(i) for i in attachment_ids}
        linked = list(order.attachments.filter(pk__in=wanted, history__isnull=True))
        if len(linked) != len(wanted):
            raise _field_error("attachment_ids", _("Name files of this order not yet shown with another action."))
        added += linked
    for guard in transition.guards:
        problem = guard.check(order)
        if problem:
            raise GuardFailed(problem, code=guard.code)
    previous_state = order.state
    order = _apply(order, transition, actor=actor, comment=comment, added=added)
    if transition.name == "cancel" and previous_state in (OrderState.PENDING_APPROVAL, OrderState.QUOTING):
        # An order cancelled in approval (or returned for revision) leaves no task nobody can decide.
        from eoms.approvals.services import end_for_subject

        end_for_subject(actor=actor, subject_type=SUBJECT_TYPE, subject_id=order.id, comment=comment)
    if transition.name == "submit":
        from eoms.approvals.services import start_approval

        start_approval(actor=actor, subject_type=SUBJECT_TYPE, subject_id=order.id, picked=picked, comment=comment)
        order.refresh_from_db()
    return order


# Every transition's writes, with prepared statements (eoms.core.rows): this is the hottest path.
_order_cas: dict[tuple[str, ...], Update] = {}
_insert_history = Insert(OrderHistory)
_lock_order = Select(Order, where=("id",), related=("project",), lock=True)
_point_owner = Update(Order, set=("stage_owner",), where=("id", "state"))


def _apply(order: Order, transition: Transition, *, actor, comment: str, added=(), refresh: bool = True) -> Order:
    """Move a checked order along `transition` with compare-and-set; one history row, one audit
    entry, one outbox message. `actor` None is the system (the approval engine's timers)."""
    now = timezone.now()
    target = transition.target
    owner = None if transition.name == "submit" else _stage_owner(order, transition.owner, actor)
    values = {
        "state": target,
        "stage_owner": owner,
        "stage_entered_at": now,
        "stage_deadline": _stage_deadline(target, now),
        "updated_by": actor or order.updated_by,
    }
    if transition.name == "hold":
        values["held_from"] = order.state
    if transition.name == "cancel":
        values["cancel_reason"] = comment
    # Compare-and-set: zero rows means another request moved the order after we read it.
    names = tuple(values)
    cas = _order_cas.get(names)
    if cas is None:
        cas = _order_cas[names] = Update(
            Order, set=(*names, "updated_at"), where=("id", "version", "state"), increment=("version",)
        )
    updated = cas(*values.values(), now, order.pk, order.version, order.state)
    if not updated:
        current = Order.objects.filter(pk=order.pk).values_list("state", "version").first()
        raise StaleOrder(
            _("Order %(number)s was changed by someone else (now %(state)s); reload it.")
            % {"number": order.number, "state": current[0]},
            current_state=current[0],
            current_version=current[1],
        )
    history = _insert_history.save(
        OrderHistory(
            order=order,
            transition=transition.name,
            from_state=order.state,
            to_state=target,
            actor=actor,
            at=now,
            comment=comment,
        )
    )
    if added:
        Attachment.objects.filter(pk__in=[a.pk for a in added]).update(history=history)
    order.last_entry = (history, [a.pk for a in added])  # what the API answers (orders.api.moved_out)
    emit(
        events.OrderTransitioned(
            order_id=order.id,
            number=order.number,
            transition=transition.name,
            from_state=order.state,
            to_state=target,
            stage_owner_id=owner.pk if owner else None,
            project_id=order.project_id,
        ),
        actor=actor,
        action=f"orders.{transition.name}",
        object_repr=order.number,
        changes={
            "state": [order.state, target],
            "comment": comment,
            "stage_owner": [str(order.stage_owner_id or ""), str(owner.pk if owner else "")],
            "attachments": [a.sha256 for a in added],
        },
    )
    summary.bump(summary.transition_changes(order, target, now))
    if refresh:
        # The compare-and-set proved the row is the one read plus these values: no need to re-read it.
        for name, value in values.items():
            setattr(order, name, value)
        order.version += 1
        order.updated_at = now
    return order


OUTCOME_TRANSITIONS = {"approved": "approve", "returned": "return_for_revision", "withdrawn": "withdraw"}


@transaction.atomic
def apply_approval_outcome(*, actor, order_id, outcome: str, comment: str = "", on_reject: str = "rejected") -> Order:
    """The approval engine's verdict on an order in PENDING_APPROVAL: approved → APPROVED; rejected
    → REJECTED (or back to QUOTING when the flow says so); returned for revision or withdrawn →
    QUOTING. Taken by the deciding approver, or by the system (actor None) on a timeout."""
    if outcome == "rejected":
        name = "reject" if on_reject == "rejected" else "return_for_revision"
    else:
        name = OUTCOME_TRANSITIONS[outcome]
    order = _lock_order.first(order_id)
    if order is None:
        raise Order.DoesNotExist(f"no order {order_id}")
    transition = BY_NAME[name]
    if order.state not in transition.sources:
        raise InvalidTransition(_explain_illegal(order, transition), current_state=order.state)
    return _apply(order, transition, actor=actor, comment=comment, refresh=False)  # the engine reads no more


def set_approval_owner(*, order_id, owner) -> None:  # owner: a user id
    """Point an order in approval at the approver now deciding it (the stage owner is a pointer the
    dashboard reads, not a business change: no version, no event; the task carries the audit)."""
    _point_owner(owner, order_id, OrderState.PENDING_APPROVAL)


@transaction.atomic
def update_order_by_approver(*, actor, order_id, changes: dict, allowed: set[str]) -> dict:
    """An approver edits fields their approval node lets them edit, while the order is in approval.
    Answers the diff; audited as an ordinary update."""
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.state != OrderState.PENDING_APPROVAL:
        raise InvalidTransition(_("Order %(number)s is not in approval.") % {"number": order.number})
    refused = sorted(set(changes) - set(allowed))
    if refused:
        raise _field_error(refused[0], _("Not editable at this approval node."))
    cleaned = {}
    for field, value in changes.items():
        if field == "contract_amount":
            cleaned[field] = _clean_amount(value)
            _check_amount_in_tree(order, cleaned[field])
        elif field == "estimated_cost":
            cleaned[field] = _clean_cost(value)
        elif field == "tax_rate":
            cleaned[field] = _clean_tax_rate(value)
        elif field in ("title", "description"):
            cleaned[field] = _clean_text(
                field, value, max_length=200 if field == "title" else 20000, required=field == "title"
            )
        else:
            raise _field_error(field, _("Not editable at this approval node."))
    diff = {}
    for field, value in cleaned.items():
        before = getattr(order, field)
        if before != value:
            diff[field] = [str(before) if before is not None else None, str(value) if value is not None else None]
    if not diff:
        return {}
    Order.objects.filter(pk=order.pk).update(
        **cleaned, version=F("version") + 1, updated_by=actor, updated_at=timezone.now()
    )
    emit(
        events.OrderUpdated(order_id=order.id, number=order.number, fields=tuple(sorted(diff))),
        actor=actor,
        object_repr=order.number,
        changes=diff,
    )
    key = summary.bucket(order)
    _recount_moved(order.id, (key, order.contract_amount), (key, cleaned.get("contract_amount", order.contract_amount)))
    return diff


def attach_file(*, actor, order_id, kind: str, upload: Upload) -> Attachment:
    """Store a checked upload (orders.attachments.inspect_upload) on an order; 404 if the order is
    not visible, 403 if the actor may not add files at its stage. A failed write removes the file."""
    stored: list[str] = []
    try:
        with transaction.atomic():
            order = access_order(actor, order_id, "attach")
            return add_attachment(actor=actor, order=order, kind=kind, upload=upload, stored=stored)
    except BaseException:
        for path in stored:
            Attachment.file.field.storage.delete(path)
        raise


@transaction.atomic
def add_attachment(*, actor, order: Order, kind: str, upload: Upload, stored: list) -> Attachment:
    """Store a checked upload on an order inside the caller's transaction; the stored file's path is
    appended to `stored` so the caller can remove it if the transaction fails."""
    if not policies.can_upload_attachment(actor, order):
        raise OrderPermissionDenied(
            _("You may not add files to order %(number)s at this stage.") % {"number": order.number}
        )
    if kind not in AttachmentKind.values:
        raise _field_error(
            "kind", _("Attachment kind must be one of %(choices)s.") % {"choices": ", ".join(AttachmentKind.values)}
        )
    attachment = Attachment(
        order=order,
        kind=kind,
        original_name=upload.name,
        content_type=upload.content_type,
        size=upload.size,
        sha256=upload.sha256,
        uploaded_by=actor,
    )
    attachment.file.save(upload.name, upload.as_file(), save=False)
    stored.append(attachment.file.name)
    attachment.save(force_insert=True)
    emit(
        events.AttachmentAdded(
            order_id=order.id, number=order.number, attachment_id=attachment.id, kind=kind, sha256=upload.sha256
        ),
        actor=actor,
        object_repr=f"{order.number}: {upload.name}",
        changes={
            "kind": kind,
            "name": upload.name,
            "size": upload.size,
            "sha256": upload.sha256,
            "content_type": upload.content_type,
        },
    )
    return attachment


def rebuild_order_summary() -> int:
    """Replace the order summary (the dashboards' figures) with a recount; the number of buckets."""
    return summary.rebuild()


def check_order_summary() -> list[tuple]:
    """Buckets where the order summary differs from a recount: (bucket, stored, counted)."""
    stored, counted = summary.current(), summary.recount()
    keys = sorted(set(stored) | set(counted), key=str)
    return [(k, stored.get(k), counted.get(k)) for k in keys if stored.get(k) != counted.get(k)]
