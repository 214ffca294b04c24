"""Building blocks for approval scenario tests: flow documents, an org tree, submitting an order,
and exact readings of what the engine wrote (tasks, steps, timeline, audit entries, outbox events).

Everything goes through the real services; the readings are plain tuples so tests compare them
with `==` against the exact expected values.
"""

from __future__ import annotations

from dataclasses import dataclass

from eoms.accounts.roles import Role
from eoms.accounts.services import create_org_unit
from eoms.approvals.models import ApprovalAction, ApprovalInstance, ApprovalStep, ApprovalTask
from eoms.approvals.selectors import instances_of
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.orders import services as orders
from eoms.orders.state import OrderState
from eoms.testing.factories import UserFactory
from eoms.testing.world import publish_flow

ORDER = "orders.order"


# --- documents ---------------------------------------------------------------------------------


def approval(node_id: str, source: str = "role", *, name: str | None = None, **kw) -> dict:
    """An approval node. Approver options (users, role, project_role, levels, chain, field) go to
    the approver source; everything else (mode, quorum, sla_hours, ...) to the node."""
    source_keys = {"users", "role", "project_role", "levels", "chain", "field"}
    approvers = {"source": source, **{k: v for k, v in kw.items() if k in source_keys}}
    if source == "role" and "role" not in approvers:
        approvers["role"] = Role.APPROVER
    if "users" in approvers:
        approvers["users"] = [str(getattr(u, "pk", u)) for u in approvers["users"]]
    node = {"type": "approval", "id": node_id, "name": name or node_id.upper(), "approvers": approvers}
    node.update({k: v for k, v in kw.items() if k not in source_keys})
    return node


def cc(node_id: str, source: str = "users", **kw) -> dict:
    recipients = {"source": source, **kw}
    if "users" in recipients:
        recipients["users"] = [str(getattr(u, "pk", u)) for u in recipients["users"]]
    return {"type": "cc", "id": node_id, "name": node_id.upper(), "recipients": recipients}


def rule(field: str, operator: str, value) -> dict:
    return {"field": field, "operator": operator, "value": value}


def when(*groups) -> dict:
    """when([rule, rule], [rule]) = (rule AND rule) OR (rule)."""
    return {"any_of": [list(g) for g in groups]}


def branch(branch_id: str, nodes: list, condition: dict | None = None, *, default: bool = False) -> dict:
    out = {"id": branch_id, "name": branch_id.upper(), "nodes": nodes, "default": default}
    if condition is not None:
        out["when"] = condition
    return out


def exclusive(node_id: str, *branches) -> dict:
    return {"type": "branch", "id": node_id, "name": node_id.upper(), "branches": list(branches)}


def parallel(node_id: str, *branches) -> dict:
    return {"type": "parallel", "id": node_id, "name": node_id.upper(), "branches": list(branches)}


def flow(*nodes, on_reject: str = "rejected") -> dict:
    return {"nodes": list(nodes), "on_reject": on_reject}


def publish(world, document: dict, *, key: str = "flow", **kw):
    """Publish `document` as the flow every order gets (a default ahead of the world's simple one)."""
    kw.setdefault("is_default", True)
    kw.setdefault("priority", 10)
    return publish_flow(world.admin, document, key=key, name=kw.pop("name", key), **kw)


# --- people --------------------------------------------------------------------------------------


def user(username: str, *roles: str, unit=None):
    u = UserFactory(username=username, display_name="", roles=list(roles))
    if unit is not None:
        u.org_unit = unit
        u.save(update_fields=["org_unit"])
    return u


def unit(code: str, *, manager=None, parent=None):
    return create_org_unit(actor=None, code=code, name=code, parent=parent, manager=manager)


def place(person, org_unit) -> None:
    person.org_unit = org_unit
    person.save(update_fields=["org_unit"])


@dataclass
class Org:
    """pm1 in a team under a department under a division under the company: four levels of
    managers above the PM (lead, head, gm, chairman)."""

    lead: object
    head: object
    gm: object
    chairman: object


def org(world) -> Org:
    chairman = user("chairman")
    gm = user("gm")
    head = user("head")
    lead = user("lead")
    company = unit("CO", manager=chairman)
    division = unit("DIV", manager=gm, parent=company)
    department = unit("DEP", manager=head, parent=division)
    team = unit("TEAM", manager=lead, parent=department)
    place(chairman, company)
    place(gm, company)
    place(head, division)
    place(lead, department)
    place(world.pm, team)
    return Org(lead=lead, head=head, gm=gm, chairman=chairman)


# --- acting --------------------------------------------------------------------------------------


def submit(world, order=None, *, amount: str = "100000.00", picked=None, actor=None, **order_kw):
    """Submit an order (a new one in QUOTING, or `order`); answers (order, instance)."""
    if order is None:
        order = world.order(OrderState.QUOTING, amount=amount, **order_kw)
    order = orders.transition_order(actor=actor or world.pm, order_id=order.id, name="submit", picked=picked)
    return order, instance_of(order)


def instance_of(order) -> ApprovalInstance:
    return instances_of(ORDER, order.id).order_by("-started_at").first()


def pending(instance, username: str) -> ApprovalTask:
    return ApprovalTask.objects.get(instance=instance, assignee__username=username, state="pending")


def state_of(order) -> str:
    order.refresh_from_db()
    return order.state


# --- reading -------------------------------------------------------------------------------------


def _name(u) -> str | None:
    return u.username if u is not None else None


def tasks(instance) -> list[tuple]:
    """(node, assignee, state, kind, on behalf of) of every task, in creation order."""
    rows = ApprovalTask.objects.filter(instance=instance).select_related("step", "assignee", "on_behalf_of")
    return [
        (t.step.node_id, t.assignee.username, t.state, t.kind, _name(t.on_behalf_of))
        for t in rows.order_by("created_at", "position")
    ]


def open_tasks(instance) -> list[tuple]:
    return [(n, u, s) for n, u, s, _k, _o in tasks(instance) if s in ("pending", "waiting")]


def steps(instance) -> list[tuple]:
    """(node, kind, state, round) of every step, in order."""
    return list(ApprovalStep.objects.filter(instance=instance).values_list("node_id", "kind", "state", "round"))


def actions(instance) -> list[tuple]:
    """(kind, actor, node) of the timeline, in order."""
    rows = ApprovalAction.objects.filter(instance=instance).select_related("actor").order_by("at", "id")
    return [(a.kind, _name(a.actor), a.node_id) for a in rows]


@dataclass
class Mark:
    """Where the audit entries and the outbox were (their last ids: the order of writing; an entry gets
    its seq when sealed, later); `since()` reads what was written after."""

    audit_id: int
    outbox: int

    def audit(self) -> list[str]:
        return list(AuditEntry.objects.filter(id__gt=self.audit_id).order_by("id").values_list("action", flat=True))

    def events(self) -> list[str]:
        return list(
            OutboxMessage.objects.filter(id__gt=self.outbox).order_by("id").values_list("event_type", flat=True)
        )

    def payloads(self, event_type: str) -> list[dict]:
        return list(
            OutboxMessage.objects.filter(id__gt=self.outbox, event_type=event_type)
            .order_by("id")
            .values_list("payload", flat=True)
        )


def mark() -> Mark:
    last_audit = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    last_id = OutboxMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return Mark(last_audit, last_id)
