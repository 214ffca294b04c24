"""An approval definition's document: a tree of nodes, as a non-programmer builds it.

The document is a list of nodes run in order. An approval node creates tasks; a CC node informs
and passes on; a branch node takes the first branch whose condition holds (else its default
branch); a parallel node runs all its branches and joins when every one has finished. Branch and
parallel nodes hold their own lists of nodes, so any nesting is possible and every flow is
structured: one way in, one way out. That shape is what DingTalk and Feishu users edit, and it
maps to BPMN gateways one to one (eoms.approvals.bpmn).

`parse_document` turns JSON into these models (422 on malformed input); `validate_document`
lists every problem that stops publishing, each naming its node; `compile_flow` flattens the tree
into the graph the engine walks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from django.utils.translation import gettext as _
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .subjects import FieldSpec

__all__ = [
    "Rule",
    "Condition",
    "ApproverSource",
    "ApprovalNode",
    "CcNode",
    "BranchNode",
    "ParallelNode",
    "Branch",
    "Document",
    "OPERATORS",
    "parse_document",
    "validate_document",
    "evaluate",
    "describe_condition",
    "compile_flow",
    "Flow",
    "Element",
    "walk_nodes",
    "quorum_needed",
    "DYNAMIC_SOURCES",
    "condition_problems",
    "DocumentInvalid",
]

OPERATORS = {
    "eq": "=",
    "ne": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "∈",
    "not_in": "∉",
    "contains": "∋",
}
NUMERIC_OPERATORS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in"}
CHOICE_OPERATORS = {"eq", "ne", "in", "not_in"}
TEXT_OPERATORS = {"eq", "ne", "in", "not_in", "contains"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Rule(_Model):
    """`field operator value`; value is a string (numbers as text, exact) or a list for in/not_in."""

    field: str
    operator: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains"]
    value: str | list[str]


class Condition(_Model):
    """Groups OR'ed together; the rules inside a group AND'ed: (a AND b) OR (c)."""

    any_of: list[list[Rule]] = Field(min_length=1)


class ApproverSource(_Model):
    """Who approves. source:
    users          named users (`users`: their ids)
    role           every active user with a company role (`role`)
    project_role   the project's PM or engineers (`project_role`: pm or engineer)
    manager        the initiator's manager `levels` up the org tree; with `chain` every manager
                   from the first to that level, one after another (连续多级主管)
    picked         a user the initiator picks at submit time
    field          the user held by a field of the object (`field`, e.g. project_manager)
    """

    source: Literal["users", "role", "project_role", "manager", "picked", "field"]
    users: list[str] = []
    role: str = ""
    project_role: str = ""
    levels: int = Field(default=1, ge=1, le=10)
    chain: bool = False
    field: str = ""


DYNAMIC_SOURCES = {"manager", "project_role", "field"}


class Quorum(_Model):
    count: int | None = Field(default=None, ge=1, le=100)
    percent: int | None = Field(default=None, ge=1, le=100)


class ApprovalNode(_Model):
    type: Literal["approval"] = "approval"
    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=100)
    approvers: ApproverSource
    mode: Literal["any", "all", "sequence", "quorum"] = "any"
    quorum: Quorum | None = None
    sla_hours: Decimal | None = Field(default=None, gt=0, le=1000)
    remind_after_hours: Decimal | None = Field(default=None, gt=0, le=1000)
    on_timeout: Literal["none", "escalate", "approve", "reject"] = "none"
    editable_fields: list[str] = []
    comment_required_on_reject: bool = True
    allow_self_approval: bool = False
    if_empty: Literal["", "admins", "approve"] = ""


class CcNode(_Model):
    type: Literal["cc"] = "cc"
    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=100)
    recipients: ApproverSource


class Branch(_Model):
    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=100)
    when: Condition | None = None
    default: bool = False
    nodes: list[Node] = []


class BranchNode(_Model):
    type: Literal["branch"] = "branch"
    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=100)
    branches: list[Branch] = Field(min_length=1)


class ParallelNode(_Model):
    type: Literal["parallel"] = "parallel"
    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=100)
    branches: list[Branch] = Field(min_length=1)


Node = Annotated[ApprovalNode | CcNode | BranchNode | ParallelNode, Field(discriminator="type")]


class Document(_Model):
    nodes: list[Node] = []
    # Where a final rejection sends the object: REJECTED (a new submission starts over) or back to
    # quotation for rework.
    on_reject: Literal["rejected", "quoting"] = "rejected"


Branch.model_rebuild()
BranchNode.model_rebuild()
ParallelNode.model_rebuild()
Document.model_rebuild()


class DocumentInvalid(ValueError):
    """The JSON is not a document at all; `errors` in the API's field-error shape."""

    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(e["message"] for e in errors))
        self.errors = errors


def parse_document(data) -> Document:
    if isinstance(data, Document):
        return data
    try:
        return Document.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors()[:20]:
            where = ".".join(str(p) for p in err["loc"])
            errors.append({"field": f"document.{where}" if where else "document", "message": err["msg"]})
        raise DocumentInvalid(errors) from None


def walk_nodes(nodes, *, inside_parallel: bool = False, path=()):
    """Every node of a tree, depth first, with whether it sits inside a parallel block and its path
    of enclosing (node id, branch id) pairs."""
    for node in nodes:
        yield node, inside_parallel, path
        if node.type in ("branch", "parallel"):
            for branch in node.branches:
                yield from walk_nodes(
                    branch.nodes,
                    inside_parallel=inside_parallel or node.type == "parallel",
                    path=(*path, (node.id, branch.id)),
                )


# --- conditions -------------------------------------------------------------------------------


def _as_decimal(value) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def _values(rule: Rule) -> list[str]:
    return rule.value if isinstance(rule.value, list) else [rule.value]


def _test(rule: Rule, actual, spec: FieldSpec | None) -> bool:
    numeric = spec is not None and spec.type in ("decimal", "int")
    if actual is None:
        return rule.operator in ("ne", "not_in")
    if numeric:
        left = _as_decimal(actual)
        rights = [_as_decimal(v) for v in _values(rule)]
        if left is None or any(r is None for r in rights):
            return False
        right = rights[0]
    else:
        left = str(actual)
        rights = [str(v) for v in _values(rule)]
        right = rights[0]
    match rule.operator:
        case "eq":
            return left == right
        case "ne":
            return left != right
        case "gt":
            return left > right
        case "gte":
            return left >= right
        case "lt":
            return left < right
        case "lte":
            return left <= right
        case "in":
            return left in rights
        case "not_in":
            return left not in rights
        case "contains":
            return right.casefold() in left.casefold()
    return False


def evaluate(condition: Condition | None, facts: dict, fields: dict[str, FieldSpec]) -> bool:
    if condition is None:
        return True
    return any(all(_test(r, facts.get(r.field), fields.get(r.field)) for r in group) for group in condition.any_of)


def describe_condition(condition: Condition | None, fields: dict[str, FieldSpec]) -> str:
    """Readable text of a condition: "amount ≥ 500,000 and type = construction"."""
    if condition is None:
        return _("otherwise")
    groups = []
    for group in condition.any_of:
        parts = []
        for r in group:
            spec = fields.get(r.field)
            label = str(spec.label) if spec else r.field
            values = _values(r)
            shown = []
            for v in values:
                if spec and spec.type in ("decimal", "int") and _as_decimal(v) is not None:
                    number = _as_decimal(v)
                    shown.append(f"{number:,.2f}".rstrip("0").rstrip(".") if "." in f"{number}" else f"{number:,}")
                elif spec and spec.choices:
                    shown.append(str(dict(spec.choices).get(v, v)))
                else:
                    shown.append(v)
            parts.append(f"{label} {OPERATORS[r.operator]} {', '.join(shown)}")
        groups.append(_(" and ").join(parts))
    return _(" or ").join(f"({g})" if len(condition.any_of) > 1 else g for g in groups)


def _interval_empty(group: list[Rule], fields: dict[str, FieldSpec]) -> bool:
    """True when the AND of these rules can never hold: numeric bounds that cross, or two
    different equalities on one field."""
    low: dict[str, tuple[Decimal, bool]] = {}
    high: dict[str, tuple[Decimal, bool]] = {}
    equal: dict[str, set[str]] = {}
    for r in group:
        spec = fields.get(r.field)
        numeric = spec is not None and spec.type in ("decimal", "int")
        if r.operator == "eq":
            key = str(_as_decimal(r.value)) if numeric else r.value
            equal.setdefault(r.field, set()).add(key)
        if r.operator == "in" and not _values(r):
            return True
        if not numeric or r.operator not in ("gt", "gte", "lt", "lte", "eq"):
            continue
        v = _as_decimal(r.value)
        if v is None:
            continue
        if r.operator in ("gt", "gte", "eq"):
            strict = r.operator == "gt"
            if r.field not in low or v > low[r.field][0] or (v == low[r.field][0] and strict):
                low[r.field] = (v, strict)
        if r.operator in ("lt", "lte", "eq"):
            strict = r.operator == "lt"
            if r.field not in high or v < high[r.field][0] or (v == high[r.field][0] and strict):
                high[r.field] = (v, strict)
    if any(len(v) > 1 for v in equal.values()):
        return True
    for name, (lo, lo_strict) in low.items():
        if name in high:
            hi, hi_strict = high[name]
            if lo > hi or (lo == hi and (lo_strict or hi_strict)):
                return True
    return False


@dataclass
class _Bounds:
    """What an AND-group of rules says about one field: the values it allows (eq / in; None: not
    limited that way), the values it excludes (ne / not_in) and, for numbers, an interval."""

    allowed: set | None = None
    excluded: set = field(default_factory=set)
    low: tuple | None = None  # (value, strict)
    high: tuple | None = None


def _bounds(group: list[Rule], fields: dict[str, FieldSpec]) -> dict[str, _Bounds] | None:
    """Per field, what the group allows; None when a value is malformed (no conclusion drawn)."""
    out: dict[str, _Bounds] = {}
    for r in group:
        spec = fields.get(r.field)
        numeric = spec is not None and spec.type in ("decimal", "int")
        values = [_as_decimal(v) for v in _values(r)] if numeric else list(_values(r))
        if any(v is None for v in values):
            return None
        b = out.setdefault(r.field, _Bounds())
        if r.operator in ("eq", "in"):
            b.allowed = set(values) if b.allowed is None else b.allowed & set(values)
        elif r.operator in ("ne", "not_in"):
            b.excluded |= set(values)
        elif numeric and r.operator in ("gt", "gte"):
            v = (values[0], r.operator == "gt")
            if b.low is None or v[0] > b.low[0] or (v[0] == b.low[0] and v[1]):
                b.low = v
        elif numeric and r.operator in ("lt", "lte"):
            v = (values[0], r.operator == "lt")
            if b.high is None or v[0] < b.high[0] or (v[0] == b.high[0] and v[1]):
                b.high = v
    return out


def _within(value, b: _Bounds) -> bool:
    if b.low is not None and (value < b.low[0] or (value == b.low[0] and b.low[1])):
        return False
    if b.high is not None and (value > b.high[0] or (value == b.high[0] and b.high[1])):
        return False
    return value not in b.excluded


def _implies(b: _Bounds | None, r: Rule, spec: FieldSpec | None) -> bool:
    """Whether every value a field's bounds allow satisfies rule `r` (False when unsure)."""
    if b is None:
        return False
    numeric = spec is not None and spec.type in ("decimal", "int")
    values = [_as_decimal(v) for v in _values(r)] if numeric else list(_values(r))
    if any(v is None for v in values):
        return False
    if b.allowed is not None:
        # A finite set of values: test each one (none left: a contradiction, reported elsewhere).
        allowed = {v for v in b.allowed if (_within(v, b) if numeric else v not in b.excluded)}
        return bool(allowed) and all(_test(r, str(v), spec) for v in allowed)
    if r.operator in ("ne", "not_in"):
        return set(values) <= b.excluded or (
            numeric and all(not _within(v, _Bounds(low=b.low, high=b.high)) for v in values)
        )
    if not numeric:
        return False
    v = values[0]
    if r.operator == "gte":
        return b.low is not None and b.low[0] >= v
    if r.operator == "gt":
        return b.low is not None and (b.low[0] > v or (b.low[0] == v and b.low[1]))
    if r.operator == "lte":
        return b.high is not None and b.high[0] <= v
    if r.operator == "lt":
        return b.high is not None and (b.high[0] < v or (b.high[0] == v and b.high[1]))
    return False


def _group_implies(group: list[Rule], earlier: list[Rule], fields: dict[str, FieldSpec]) -> bool:
    """True when every case `group` holds for, `earlier` holds for too (conservative: False when
    it cannot tell)."""
    bounds = _bounds(group, fields)
    if bounds is None:
        return False
    return all(_implies(bounds.get(r.field), r, fields.get(r.field)) for r in earlier)


def _condition_key(condition: Condition) -> frozenset:
    return frozenset(frozenset((r.field, r.operator, tuple(_values(r))) for r in group) for group in condition.any_of)


# --- validation -------------------------------------------------------------------------------


def quorum_needed(node: ApprovalNode, approvers: int) -> int:
    """How many approvals end a node, given how many approvers it has."""
    if node.mode == "any":
        return 1
    if node.mode == "quorum" and node.quorum:
        if node.quorum.count:
            return min(node.quorum.count, approvers)
        if node.quorum.percent:
            return max(1, math.ceil(approvers * node.quorum.percent / 100))
    return approvers


def rule_problems(rule: Rule, fields: dict[str, FieldSpec], name: str) -> list[str]:
    """What is wrong with one rule of a condition named `name` (empty: nothing)."""
    out: list[str] = []
    spec = fields.get(rule.field)
    label = {"node": name, "field": rule.field}
    if spec is None:
        return [
            _("Branch “%(node)s”: unknown field “%(field)s”; choose one of %(fields)s.")
            % {**label, "fields": ", ".join(sorted(fields))}
        ]
    if spec.type in ("decimal", "int"):
        allowed = NUMERIC_OPERATORS
    elif spec.type == "choice":
        allowed = CHOICE_OPERATORS
    else:
        allowed = TEXT_OPERATORS
    if rule.operator not in allowed:
        out.append(
            _("Branch “%(node)s”: “%(op)s” does not apply to %(field)s.") % {**label, "op": OPERATORS[rule.operator]}
        )
    multi = rule.operator in ("in", "not_in")
    if multi != isinstance(rule.value, list):
        out.append(_("Branch “%(node)s”: give a list of values for in / not in, one value otherwise.") % label)
        return out
    for v in _values(rule):
        if spec.type in ("decimal", "int") and _as_decimal(v) is None:
            out.append(_("Branch “%(node)s”: “%(value)s” is not a number.") % {**label, "value": v})
        if spec.type == "choice" and v not in dict(spec.choices):
            out.append(_("Branch “%(node)s”: “%(value)s” is not a value of %(field)s.") % {**label, "value": v})
    return out


def condition_problems(condition: Condition, fields: dict[str, FieldSpec], name: str) -> list[str]:
    out = [m for group in condition.any_of for rule in group for m in rule_problems(rule, fields, name)]
    if not out and all(_interval_empty(g, fields) for g in condition.any_of):
        out.append(_("Branch “%(node)s” is unreachable: its condition can never hold.") % {"node": name})
    return out


@dataclass
class Problem:
    node: str
    message: str

    def as_error(self) -> dict:
        return {"field": f"node:{self.node}" if self.node else "document", "node": self.node, "message": self.message}


def validate_document(
    doc: Document,
    *,
    fields: dict[str, FieldSpec],
    editable: dict[str, FieldSpec],
    user_ids_active=None,
    role_has_users=None,
    user_fields: set[str] = frozenset(),
    read_only_roles: set[str] = frozenset(),
) -> list[dict]:
    """Every problem that stops publishing, each naming its node. `user_ids_active(ids) -> set` and
    `role_has_users(role) -> bool` look at the directory so that a node whose approvers would be
    empty is caught now, not when an order arrives; `read_only_roles` may be copied (CC) but
    cannot approve."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    approval_nodes = 0

    def note(node_id: str, message: str) -> None:
        problems.append(Problem(node_id, message))

    def check_source(node_id: str, name: str, src: ApproverSource, *, fallback: str) -> None:
        label = {"node": name}
        if src.source == "users":
            if not src.users:
                note(node_id, _("Node “%(node)s”: name at least one approver.") % label)
            elif user_ids_active is not None:
                active = user_ids_active(src.users)
                missing = [u for u in src.users if u not in active]
                if len(missing) == len(src.users):
                    note(node_id, _("Node “%(node)s”: none of its named users is an active user.") % label)
        elif src.source == "role":
            if not src.role:
                note(node_id, _("Node “%(node)s”: choose a role.") % label)
            elif src.role in read_only_roles and fallback != "skip":
                note(
                    node_id,
                    _("Node “%(node)s”: the role %(role)s only reads; it cannot approve.")
                    % {**label, "role": src.role},
                )
            elif role_has_users is not None and not role_has_users(src.role):
                note(node_id, _("Node “%(node)s”: no active user has the role %(role)s.") % {**label, "role": src.role})
        elif src.source == "project_role" and src.project_role not in ("pm", "engineer"):
            note(node_id, _("Node “%(node)s”: choose the project role (PM or engineer).") % label)
        elif src.source == "field" and src.field not in user_fields:
            note(
                node_id,
                _("Node “%(node)s”: “%(field)s” is not a field holding a user; choose one of %(fields)s.")
                % {**label, "field": src.field, "fields": ", ".join(sorted(user_fields)) or "-"},
            )
        if src.source in DYNAMIC_SOURCES and not fallback:
            note(
                node_id,
                _(
                    "Node “%(node)s”: its approvers can be empty (no manager, no PM, an empty field); "
                    "choose what happens then: send to administrators or approve automatically."
                )
                % label,
            )

    def check_rule(node_id: str, name: str, rule: Rule) -> None:
        problems.extend(Problem(node_id, m) for m in rule_problems(rule, fields, name))

    def visit(nodes, inside_parallel: bool) -> None:
        nonlocal approval_nodes
        for node in nodes:
            if node.id in seen:
                note(node.id, _("Two nodes share the id “%(id)s”; ids must be unique.") % {"id": node.id})
            seen[node.id] = node.type
            if node.type == "approval":
                approval_nodes += 1
                check_source(node.id, node.name, node.approvers, fallback=node.if_empty)
                if node.mode == "quorum" and (
                    node.quorum is None or bool(node.quorum.count) == bool(node.quorum.percent)
                ):
                    note(
                        node.id,
                        _("Node “%(node)s”: a quorum needs either a number of approvals or a percentage.")
                        % {"node": node.name},
                    )
                if node.mode != "quorum" and node.quorum is not None:
                    note(node.id, _("Node “%(node)s”: a quorum applies only in quorum mode.") % {"node": node.name})
                count = node.quorum.count if node.mode == "quorum" and node.quorum else None
                if count and node.approvers.source == "picked" and count > 1:
                    note(
                        node.id,
                        _("Node “%(node)s”: one picked approver cannot reach a quorum of %(n)s.")
                        % {"node": node.name, "n": node.quorum.count},
                    )
                if count and node.approvers.source == "users" and count > len(node.approvers.users):
                    note(
                        node.id,
                        _("Node “%(node)s”: a quorum of %(n)s needs at least %(n)s approvers.")
                        % {"node": node.name, "n": node.quorum.count},
                    )
                if node.on_timeout != "none" and not node.sla_hours:
                    note(node.id, _("Node “%(node)s”: a timeout action needs an SLA in hours.") % {"node": node.name})
                if node.remind_after_hours and node.sla_hours and node.remind_after_hours >= node.sla_hours:
                    note(
                        node.id,
                        _("Node “%(node)s”: the reminder must come before the SLA ends.") % {"node": node.name},
                    )
                unknown = [f for f in node.editable_fields if f not in editable]
                if unknown:
                    note(
                        node.id,
                        _("Node “%(node)s”: approvers cannot edit %(fields)s; editable are %(allowed)s.")
                        % {"node": node.name, "fields": ", ".join(unknown), "allowed": ", ".join(sorted(editable))},
                    )
            elif node.type == "cc":
                check_source(node.id, node.name, node.recipients, fallback="skip")
            elif node.type == "branch":
                defaults = [b for b in node.branches if b.default]
                if len(node.branches) < 2:
                    note(node.id, _("Branch “%(node)s”: add at least two branches.") % {"node": node.name})
                if len(defaults) != 1:
                    note(
                        node.id,
                        _("Branch “%(node)s”: exactly one branch must be the default (taken when no condition holds).")
                        % {"node": node.name},
                    )
                earlier: list[frozenset] = []
                taken: list[Branch] = []
                for branch in node.branches:
                    if branch.id in seen:
                        note(branch.id, _("Two nodes share the id “%(id)s”; ids must be unique.") % {"id": branch.id})
                    seen[branch.id] = "branch-path"
                    if branch.default:
                        if branch.when is not None:
                            note(
                                branch.id,
                                _("Branch “%(node)s”: the default branch takes no condition.") % {"node": branch.name},
                            )
                    elif branch.when is None:
                        note(branch.id, _("Branch “%(node)s”: give it a condition.") % {"node": branch.name})
                    else:
                        before = len(problems)
                        for group in branch.when.any_of:
                            for rule in group:
                                check_rule(branch.id, branch.name, rule)
                        sound = len(problems) == before  # no conclusion is drawn from a broken rule
                        if all(_interval_empty(g, fields) for g in branch.when.any_of):
                            note(
                                branch.id,
                                _("Branch “%(node)s” is unreachable: its condition can never hold.")
                                % {"node": branch.name},
                            )
                        key = _condition_key(branch.when)
                        if key in earlier:
                            note(
                                branch.id,
                                _("Branch “%(node)s” is unreachable: an earlier branch has the same condition.")
                                % {"node": branch.name},
                            )
                        else:
                            # Shadowed: each of its cases is taken by an earlier branch first (e.g.
                            # "amount ≥ 500,000" listed before "amount ≥ 5,000,000").
                            covering = []
                            for group in branch.when.any_of:
                                by = next(
                                    (e for e in taken if any(_group_implies(group, g, fields) for g in e.when.any_of)),
                                    None,
                                )
                                covering.append(by)
                            never = all(_interval_empty(g, fields) for g in branch.when.any_of)
                            if sound and taken and all(covering) and not never:
                                note(
                                    branch.id,
                                    _(
                                        "Branch “%(node)s” is unreachable: "
                                        "the earlier branch “%(other)s” takes every case."
                                    )
                                    % {"node": branch.name, "other": covering[0].name},
                                )
                        earlier.append(key)
                        if sound:
                            taken.append(branch)
                    visit(branch.nodes, inside_parallel)
            elif node.type == "parallel":
                if len(node.branches) < 2:
                    note(node.id, _("Parallel “%(node)s”: add at least two branches.") % {"node": node.name})
                for branch in node.branches:
                    if branch.id in seen:
                        note(branch.id, _("Two nodes share the id “%(id)s”; ids must be unique.") % {"id": branch.id})
                    seen[branch.id] = "branch-path"
                    if branch.when is not None or branch.default:
                        note(
                            branch.id,
                            _("Parallel “%(node)s”: parallel branches all run; they take no condition.")
                            % {"node": node.name},
                        )
                    if not any(n.type == "approval" for n, _i, _p in walk_nodes(branch.nodes)):
                        note(
                            branch.id,
                            _("Parallel branch “%(node)s” has no approval node.") % {"node": branch.name},
                        )
                    visit(branch.nodes, True)

    visit(doc.nodes, False)
    if not approval_nodes:
        problems.insert(0, Problem("", _("The flow has no approval node; add one.")))
    return [p.as_error() for p in problems]


# --- the graph the engine walks ---------------------------------------------------------------


@dataclass
class Element:
    """A point of the compiled flow. kind: start, end, approval, cc, split (exclusive), fork
    (parallel), join. `next` is the single following element for start/approval/cc/join;
    `outgoing` pairs (branch, first element id) for split and fork."""

    id: str
    kind: str
    node: object = None
    next: str | None = None
    outgoing: list = field(default_factory=list)
    join: str | None = None  # for a fork: its join; for a join: its fork
    branches: int = 0
    parallel_depth: int = 0


@dataclass
class Flow:
    elements: dict[str, Element]
    order: list[str]  # approval and cc node ids in document order

    def node(self, node_id: str):
        element = self.elements.get(node_id)
        return element.node if element else None


def compile_flow(doc: Document) -> Flow:
    elements: dict[str, Element] = {"start": Element("start", "start"), "end": Element("end", "end")}
    order: list[str] = []

    def chain(nodes, then: str, depth: int) -> str:
        """Compile `nodes` so that the last one continues to `then`; answer the first element's id."""
        following = then
        for node in reversed(nodes):
            if node.type in ("approval", "cc"):
                elements[node.id] = Element(node.id, node.type, node=node, next=following, parallel_depth=depth)
                following = node.id
            else:
                kind = "split" if node.type == "branch" else "fork"
                join_id = f"{node.id}::join"
                elements[join_id] = Element(join_id, "join", node=node, next=following, join=node.id)
                element = Element(
                    node.id, kind, node=node, join=join_id, branches=len(node.branches), parallel_depth=depth
                )
                for branch in node.branches:
                    first = chain(branch.nodes, join_id, depth + (1 if kind == "fork" else 0))
                    element.outgoing.append((branch, first))
                elements[node.id] = element
                following = node.id
        return following

    elements["start"].next = chain(doc.nodes, "end", 0)
    for node, _inside, _path in walk_nodes(doc.nodes):
        if node.type in ("approval", "cc"):
            order.append(node.id)
    return Flow(elements, order)
