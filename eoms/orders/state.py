"""The order lifecycle as data: states, transitions, who may take them, guards and the next owner.

The API's transition endpoints, the buttons on the order page and the state diagram are all derived
from TRANSITIONS; orders.services applies one with compare-and-set on the order's version.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from eoms.accounts.roles import Role

__all__ = [
    "OrderState",
    "Transition",
    "Guard",
    "TRANSITIONS",
    "BY_NAME",
    "transitions_from",
    "DEFAULT_STAGE_DAYS",
    "EDITABLE_FIELDS",
    "MAIN_FLOW",
]


class OrderState(models.TextChoices):
    INITIATED = "INITIATED", _("Initiated")
    QUOTING = "QUOTING", _("Quoting")
    PENDING_APPROVAL = "PENDING_APPROVAL", _("Pending approval")
    APPROVED = "APPROVED", _("Approved")
    REJECTED = "REJECTED", _("Rejected")
    SIGNED = "SIGNED", _("Signed")
    IN_EXECUTION = "IN_EXECUTION", _("In execution")
    ON_HOLD = "ON_HOLD", _("On hold")
    PENDING_ACCEPTANCE = "PENDING_ACCEPTANCE", _("Pending acceptance")
    ACCEPTED = "ACCEPTED", _("Accepted")
    SETTLING = "SETTLING", _("Settling")
    SETTLED = "SETTLED", _("Settled")
    CANCELLED = "CANCELLED", _("Cancelled")

    @classmethod
    def terminal(cls) -> frozenset:
        return frozenset({cls.SETTLED, cls.CANCELLED})


S = OrderState
MAIN_FLOW = (
    S.INITIATED,
    S.QUOTING,
    S.PENDING_APPROVAL,
    S.APPROVED,
    S.SIGNED,
    S.IN_EXECUTION,
    S.PENDING_ACCEPTANCE,
    S.ACCEPTED,
    S.SETTLING,
    S.SETTLED,
)
BEFORE_SIGNING = (S.INITIATED, S.QUOTING, S.PENDING_APPROVAL, S.APPROVED, S.REJECTED)
AFTER_SIGNING = (S.SIGNED, S.IN_EXECUTION, S.ON_HOLD, S.PENDING_ACCEPTANCE, S.ACCEPTED, S.SETTLING)
SETTLEMENT_READY = frozenset({S.ACCEPTED, S.SETTLING, S.SETTLED, S.CANCELLED})


@dataclass(frozen=True)
class Guard:
    """A condition a transition needs. `check(order)` answers None when met, or why not."""

    code: str
    description: Promise
    check: Callable[[object], str | None]


def _has_attachment(kind: str, message: Promise) -> Callable[[object], str | None]:
    def check(order) -> str | None:
        return None if order.attachments.filter(kind=kind).exists() else str(message)

    return check


def _children_accepted(order) -> str | None:
    waiting = [c.number for c in order.children.exclude(state__in=SETTLEMENT_READY).only("number")]
    if not waiting:
        return None
    return str(_("Child orders must be accepted first: %(numbers)s")) % {"numbers": ", ".join(waiting[:10])}


SIGNED_CONTRACT = Guard(
    "order.signed_contract_required",
    _("a signed contract is attached"),
    _has_attachment("signed_contract", _("Attach the signed contract (kind: signed contract) to sign the order.")),
)
ACCEPTANCE_REPORT = Guard(
    "order.acceptance_report_required",
    _("an acceptance report is attached"),
    _has_attachment(
        "acceptance_report", _("Attach the acceptance report (kind: acceptance report) to accept the order.")
    ),
)
CHILDREN_ACCEPTED = Guard("order.children_not_accepted", _("all child orders are accepted"), _children_accepted)


@dataclass(frozen=True)
class Transition:
    """One legal move. `owner` names who owns the target stage: "pm" (the project's manager),
    "approver", "finance", "engineer", "actor" or "none"."""

    name: str
    label: Promise
    sources: tuple[str, ...]
    target: str
    roles: frozenset[str]
    guards: tuple[Guard, ...] = ()
    comment_required: bool = False
    owner: str = "pm"
    style: str = "primary"
    # Cancelling after signing is the admin's alone, even though PMs cancel before it.
    role_overrides: dict = field(default_factory=dict)
    # Taken only by the approval engine (eoms.approvals) when an approval ends; no button, no endpoint.
    system: bool = False

    def allowed_roles(self, source: str) -> frozenset[str]:
        return self.role_overrides.get(source, self.roles)


PM, APPROVER, FIELD, FINANCE, ADMIN = (
    Role.PROJECT_MANAGER,
    Role.APPROVER,
    Role.FIELD_ENGINEER,
    Role.FINANCE,
    Role.ADMIN,
)

TRANSITIONS: tuple[Transition, ...] = (
    Transition("start_quotation", _("Start quotation"), (S.INITIATED,), S.QUOTING, frozenset({PM, ADMIN})),
    Transition(
        "submit", _("Submit for approval"), (S.QUOTING,), S.PENDING_APPROVAL, frozenset({PM, ADMIN}), owner="approver"
    ),
    Transition(
        "approve",
        _("Approved"),
        (S.PENDING_APPROVAL,),
        S.APPROVED,
        frozenset(),
        style="success",
        system=True,
    ),
    Transition(
        "reject",
        _("Rejected"),
        (S.PENDING_APPROVAL,),
        S.REJECTED,
        frozenset(),
        style="danger",
        system=True,
    ),
    Transition(
        "return_for_revision",
        _("Returned for revision"),
        (S.PENDING_APPROVAL,),
        S.QUOTING,
        frozenset(),
        style="warning",
        system=True,
    ),
    Transition(
        "withdraw",
        _("Withdrawn from approval"),
        (S.PENDING_APPROVAL,),
        S.QUOTING,
        frozenset(),
        style="warning",
        system=True,
    ),
    Transition("revise", _("Revise quotation"), (S.REJECTED,), S.QUOTING, frozenset({PM, ADMIN})),
    Transition(
        "sign", _("Sign"), (S.APPROVED,), S.SIGNED, frozenset({PM, ADMIN}), guards=(SIGNED_CONTRACT,), style="success"
    ),
    Transition(
        "start_execution", _("Start execution"), (S.SIGNED,), S.IN_EXECUTION, frozenset({PM, FIELD}), owner="engineer"
    ),
    Transition(
        "hold",
        _("Put on hold"),
        (S.IN_EXECUTION,),
        S.ON_HOLD,
        frozenset({PM, ADMIN}),
        comment_required=True,
        style="warning",
    ),
    Transition("resume", _("Resume"), (S.ON_HOLD,), S.IN_EXECUTION, frozenset({PM, ADMIN}), owner="engineer"),
    Transition(
        "request_acceptance", _("Request acceptance"), (S.IN_EXECUTION,), S.PENDING_ACCEPTANCE, frozenset({PM, FIELD})
    ),
    Transition(
        "accept",
        _("Record acceptance"),
        (S.PENDING_ACCEPTANCE,),
        S.ACCEPTED,
        frozenset({PM}),
        guards=(ACCEPTANCE_REPORT,),
        style="success",
        owner="finance",
    ),
    Transition(
        "reject_acceptance",
        _("Acceptance failed: rework"),
        (S.PENDING_ACCEPTANCE,),
        S.IN_EXECUTION,
        frozenset({PM}),
        comment_required=True,
        style="warning",
        owner="engineer",
    ),
    Transition(
        "start_settlement",
        _("Start settlement"),
        (S.ACCEPTED,),
        S.SETTLING,
        frozenset({FINANCE, PM}),
        guards=(CHILDREN_ACCEPTED,),
        owner="finance",
    ),
    Transition("settle", _("Settle"), (S.SETTLING,), S.SETTLED, frozenset({FINANCE}), style="success", owner="none"),
    Transition(
        "cancel",
        _("Cancel"),
        BEFORE_SIGNING + AFTER_SIGNING,
        S.CANCELLED,
        frozenset({PM, ADMIN}),
        comment_required=True,
        style="danger",
        owner="none",
        role_overrides={s: frozenset({ADMIN}) for s in AFTER_SIGNING},
    ),
)

BY_NAME: dict[str, Transition] = {t.name: t for t in TRANSITIONS}


def transitions_from(state: str) -> list[Transition]:
    return [t for t in TRANSITIONS if state in t.sources]


# Days an order may stay in a stage before it is overdue; EOMS_STAGE_DAYS overrides per state.
DEFAULT_STAGE_DAYS = {
    S.INITIATED: 5,
    S.QUOTING: 10,
    S.PENDING_APPROVAL: 3,
    S.APPROVED: 7,
    S.REJECTED: 5,
    S.SIGNED: 7,
    S.IN_EXECUTION: 120,
    S.ON_HOLD: 30,
    S.PENDING_ACCEPTANCE: 14,
    S.ACCEPTED: 30,
    S.SETTLING: 30,
}

# Which fields an update may change in each state; amounts freeze once approved (changes to a
# signed order's amount go through change orders, a later capability).
_EARLY = frozenset(
    {"title", "description", "contract_amount", "estimated_cost", "tax_rate", "kind", "stage_owner", "stage_deadline"}
)
_LATE = frozenset({"title", "description", "stage_owner", "stage_deadline"})
EDITABLE_FIELDS: dict[str, frozenset[str]] = {
    S.INITIATED: _EARLY,
    S.QUOTING: _EARLY,
    S.REJECTED: _EARLY,
    S.PENDING_APPROVAL: frozenset({"description", "stage_owner", "stage_deadline"}),
    **dict.fromkeys(
        (S.APPROVED, S.SIGNED, S.IN_EXECUTION, S.ON_HOLD, S.PENDING_ACCEPTANCE, S.ACCEPTED, S.SETTLING), _LATE
    ),
    S.SETTLED: frozenset(),
    S.CANCELLED: frozenset(),
}
