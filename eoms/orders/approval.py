"""Orders as a subject of the approval engine: the facts its conditions test, who its project
roles are, and what an approval's outcome does to the order. Registered in OrdersConfig.ready()."""

from django.urls import reverse
from django.utils.translation import gettext as gettext_now
from django.utils.translation import gettext_lazy as _

from eoms.accounts.roles import ProjectRole
from eoms.accounts.selectors import members_with_role
from eoms.approvals.subjects import FieldSpec, Subject
from eoms.core.ids import valid_uuids
from eoms.core.rows import Select

from . import policies, selectors
from .errors import OrderNotFound
from .models import Order, OrderKind, TaxRate
from .state import BY_NAME, OrderState

__all__ = ["OrderSubject"]


def _choices(enum) -> tuple:
    return tuple((v, label) for v, label in enum.choices)


# What a subject is made of, read with prepared statements (eoms.core.rows): every decision needs it.
_RELATED = ("project", "project__project_type", "customer")
_load = Select(Order, where=("id",), related=_RELATED)
_load_many = Select(Order, where=("id__in",), related=_RELATED)


class OrderSubject:
    type = "orders.order"
    label = _("order")

    def fields(self) -> list[FieldSpec]:
        from eoms.masterdata.selectors import customer_grade_choices, project_type_choices, region_choices

        return [
            FieldSpec("amount", _("contract amount"), "decimal"),
            # Empty (None) without an estimated cost: then only ≠ and ∉ hold, as for any empty fact.
            FieldSpec("margin", _("gross margin (%)"), "decimal"),
            FieldSpec("kind", _("type"), "choice", _choices(OrderKind)),
            FieldSpec("region", _("region"), "choice", tuple(region_choices())),
            FieldSpec("customer_grade", _("customer grade"), "choice", tuple(customer_grade_choices())),
            FieldSpec("project_type", _("project type"), "choice", tuple(project_type_choices())),
            FieldSpec("tax_rate", _("tax rate"), "choice", _choices(TaxRate)),
            FieldSpec("level", _("level"), "int"),
            FieldSpec("title", _("title"), "text"),
            FieldSpec("project_code", _("project code"), "text"),
        ]

    def editable_fields(self) -> list[FieldSpec]:
        return [
            FieldSpec("contract_amount", _("contract amount"), "decimal"),
            FieldSpec("estimated_cost", _("estimated cost"), "decimal"),
            FieldSpec("tax_rate", _("tax rate"), "choice", _choices(TaxRate)),
            FieldSpec("title", _("title"), "text"),
            FieldSpec("description", _("description"), "text"),
        ]

    def user_fields(self) -> list[str]:
        return ["project_manager", "stage_owner", "created_by"]

    def not_found(self):
        return OrderNotFound(_("No such order."))

    def _subject(self, order: Order) -> Subject:
        return Subject(
            type=self.type,
            id=str(order.pk),
            obj=order,
            repr=f"{order.number} {order.title}"[:200],
            project_id=order.project_id,
            facts={
                "amount": order.contract_amount,
                "margin": order.margin,  # percent, e.g. Decimal("18.50"); None without a cost estimate
                "kind": order.kind,
                "region": order.region,
                "customer_grade": order.customer.grade,
                "project_type": order.project.project_type.code if order.project.project_type_id else None,
                "tax_rate": f"{order.tax_rate:.2f}",
                "level": order.level,
                "title": order.title,
                "project_code": order.project.code,
            },
            url=reverse("orders:detail", args=[order.pk]),
        )

    def load(self, subject_id) -> Subject:
        order = _load.first(subject_id)
        if order is None:
            raise self.not_found()
        return self._subject(order)

    def load_many(self, subject_ids) -> dict[str, Subject]:
        """Several orders in one query, by id (missing ones left out): for lists of tasks."""
        return {str(o.pk): self._subject(o) for o in _load_many.all(valid_uuids(subject_ids))}

    def can_view(self, actor, subject: Subject) -> bool:
        return policies.can_view_order(actor, subject.obj)

    def user_field(self, subject: Subject, name: str):
        order = subject.obj
        if name == "project_manager":
            return order.project.manager
        if name == "stage_owner":
            return order.stage_owner
        if name == "created_by":
            return order.created_by
        return None

    def project_role_users(self, subject: Subject, project_role: str) -> list:
        order = subject.obj
        if project_role == "pm":
            users = list(members_with_role(order.project_id, ProjectRole.PM).order_by("username"))
            manager = order.project.manager
            if manager is not None and manager.is_active and manager not in users:
                users.insert(0, manager)
            return users
        return list(members_with_role(order.project_id, ProjectRole.ENGINEER).order_by("username"))

    def initiator_of(self, subject: Subject):
        return subject.obj.created_by

    def apply_edits(self, *, actor, subject: Subject, changes: dict) -> dict:
        from .services import update_order_by_approver

        return update_order_by_approver(actor=actor, order_id=subject.obj.pk, changes=changes, allowed=set(changes))

    def on_outcome(self, *, actor, subject_id: str, outcome: str, comment: str, instance) -> None:
        from .services import apply_approval_outcome

        on_reject = (instance.definition.document or {}).get("on_reject", "rejected")
        apply_approval_outcome(actor=actor, order_id=subject_id, outcome=outcome, comment=comment, on_reject=on_reject)

    def on_task_created(self, subject_id, task) -> None:
        from .services import set_approval_owner

        set_approval_owner(order_id=subject_id, owner=task.assignee_id)

    def page_context(self, subject: Subject) -> dict:
        return _order_context(subject.obj)

    def recent(self, limit: int) -> list[Subject]:
        orders = Order.objects.select_related("project", "project__project_type", "customer", "created_by").order_by(
            "-created_at"
        )[:limit]
        return [self._subject(o) for o in orders]


def _budget(order) -> dict:
    """What the order holds of money: its amount with tax, and the room its subcontracts leave
    (and, for a subcontract, the room left in its parent). Cancelled subcontracts take no room."""
    from .services import _room_in_parent

    room = _room_in_parent(order)
    budget = {
        "amount": order.contract_amount,
        "tax_rate": order.tax_rate,
        "tax": order.tax_amount,
        "net": order.net_amount,
        "children": order.contract_amount - room,
        "children_count": order.children.exclude(state=OrderState.CANCELLED).count(),
        "room": room,
        "parent": order.parent,
    }
    if order.parent_id:
        budget["parent_room"] = _room_in_parent(order.parent)
    return budget


def _order_context(order) -> dict:
    """The order's part of the approval task page: the order, its budget and its history."""
    timeline = selectors.order_timeline(order)
    for entry in timeline:
        t = BY_NAME.get(entry.transition)
        entry.label = (
            str(t.label) if t else (gettext_now("Created") if entry.transition == "create" else entry.transition)
        )
        entry.to_label = str(OrderState(entry.to_state).label) if entry.to_state in OrderState.values else ""
    return {"order": order, "budget": _budget(order), "order_timeline": list(reversed(timeline))}
