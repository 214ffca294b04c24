"""BPMN 2.0 interchange for approval definitions: `export_bpmn` writes a document as a process that
opens laid out in bpmn.io and Camunda Modeler; `import_bpmn` reads such a file back, or one drawn
there by hand, into a document.

The mapping, both ways:

process             id = the definition's key, name = its name; property eoms:on_reject. When the
                    key is not a valid XML id or a node already uses it, the id differs and the
                    property eoms:key holds the key.
startEvent/endEvent the document's start and end. Import merges several end events into one end.
userTask            an approval node (id, name). Approvers: source users -> camunda:candidateUsers
                    "id1,id2"; source role -> camunda:candidateGroups "role"; every other source ->
                    property eoms:approvers = source, with eoms:approvers.<field> for its settings
                    (levels, chain, project_role, field...). Drawn by hand, camunda:assignee "u"
                    reads as users [u] and camunda:candidateGroups as a role.
                    Mode -> multiInstanceLoopCharacteristics, read back from it alone:
                      any       parallel, completionCondition ${nrOfCompletedInstances >= 1}
                      all       parallel, no completionCondition (== nrOfInstances also reads as all)
                      quorum k  parallel, ${nrOfCompletedInstances >= k}
                      quorum p% parallel, ${nrOfCompletedInstances / nrOfInstances >= 0.6}
                      sequence  isSequential="true"
                    no loop at all reads as any. Only where the loop cannot tell (a quorum of 1
                    looks like any) the property eoms:mode, and eoms:quorum.count/percent, settle it.
                    Other settings are properties, written when they differ from the default:
                    eoms:sla_hours, eoms:remind_after_hours, eoms:on_timeout, eoms:editable_fields
                    (JSON list), eoms:comment_required_on_reject, eoms:allow_self_approval, eoms:if_empty.
sendTask            a CC node (chosen over serviceTask because a CC sends and waits for nothing);
                    recipients in eoms:recipients and eoms:recipients.<field> (users as a JSON list).
exclusiveGateway    a branch node: the diverging gateway carries the node's id and name and a
                    `default` naming the default branch's flow; a converging gateway "<id>.join"
                    closes it. Each branch is the flow leaving the diverging gateway (id and name of
                    the branch); its condition is a conditionExpression (see format_condition). An
                    empty branch is a flow straight to the converging gateway. Import also accepts
                    branches that meet at the next task or at the end without a converging gateway.
parallelGateway     a parallel node: fork (id, name) and join "<id>.join"; branches as above.

Properties are camunda:properties/camunda:property pairs inside bpmn:extensionElements. Branch
order is the order of the sequenceFlow elements, which is also the order Camunda tests them in.
Not kept: a condition or default flag on a parallel branch and a condition on a default branch
(both refused by validate_document anyway).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import Decimal

import defusedxml
import defusedxml.ElementTree as SafeET
from django.utils.translation import gettext as _

from eoms.core.errors import ValidationFailed

from .definition import ApprovalNode, ApproverSource, Condition, Document, DocumentInvalid, parse_document

__all__ = ["BpmnInvalid", "MAX_BYTES", "export_bpmn", "import_bpmn", "format_condition", "parse_condition"]

MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 40
MAX_GROUPS = 64

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
DC_NS = "http://www.omg.org/spec/DD/20100524/DC"
DI_NS = "http://www.omg.org/spec/DD/20100524/DI"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MODELER_NS = "http://camunda.org/schema/modeler/1.0"
# Flowable and Activiti spell the same assignment attributes in their own namespaces; files from
# those modelers are common, so their assignee/candidate attributes are read too.
ASSIGNMENT_NS = (CAMUNDA_NS, "http://flowable.org/bpmn", "http://activiti.org/bpmn")

TASKS = ("userTask", "sendTask")
GATEWAYS = ("exclusiveGateway", "parallelGateway")
FLOW_NODES = ("startEvent", "endEvent", *TASKS, *GATEWAYS)
SUPPORTED = "startEvent, endEvent, userTask, sendTask, exclusiveGateway, parallelGateway, sequenceFlow"
# Process children that carry no behaviour: notes, lanes, data objects, grouping boxes.
IGNORED = {
    "documentation",
    "extensionElements",
    "laneSet",
    "textAnnotation",
    "association",
    "group",
    "dataObject",
    "dataObjectReference",
    "dataStoreReference",
    "property",
}
SOURCE_FIELDS = ("users", "role", "project_role", "levels", "chain", "field")
APPROVAL_SETTINGS = (
    "sla_hours",
    "remind_after_hours",
    "on_timeout",
    "editable_fields",
    "comment_required_on_reject",
    "allow_self_approval",
    "if_empty",
)
USER_TASK_PROPERTIES = (
    "eoms:approvers",
    *(f"eoms:approvers.{f}" for f in SOURCE_FIELDS),
    "eoms:mode",
    "eoms:quorum.count",
    "eoms:quorum.percent",
    *(f"eoms:{s}" for s in APPROVAL_SETTINGS),
)
SEND_TASK_PROPERTIES = ("eoms:recipients", *(f"eoms:recipients.{f}" for f in SOURCE_FIELDS))
PROCESS_PROPERTIES = ("eoms:on_reject", "eoms:key")


class BpmnInvalid(ValidationFailed):
    """A BPMN file EOMS cannot take; every message names the element at fault."""

    code = "approval.bpmn_invalid"

    def __init__(self, messages: list[str]):
        super().__init__(errors=[{"field": "file", "message": m} for m in messages[:50]])


# --- conditions -------------------------------------------------------------------------------

_OPERATOR_TEXT = {
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
}
_SYMBOLS = {"==": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_WORDS = {"eq": "eq", "ne": "ne", "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
_MIRROR = {"eq": "eq", "ne": "ne", "gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte"}
# Bare only when JUEL reads the number back as the same text: "007" stays a quoted code.
_BARE_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?\Z")
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
     |(?P<num>-?\d+(?:\.\d+)?)
     |(?P<sym>&&|\|\||==|!=|>=|<=|>|<|\(|\)|\[|\]|,)
     |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.X | re.S,
)


def _literal(value: str) -> str:
    if _BARE_NUMBER.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_condition(condition: Condition) -> str:
    """The JUEL text of a condition, `${a >= 1 && b == "x" || c in ["p","q"]}`: && binds tighter
    than ||, an empty AND group is `true`. parse_condition reads it back to the same rules."""
    groups = []
    for group in condition.any_of:
        parts = []
        for rule in group:
            if isinstance(rule.value, list):
                value = "[" + ",".join(_literal(v) for v in rule.value) + "]"
            else:
                value = _literal(rule.value)
            parts.append(f"{rule.field} {_OPERATOR_TEXT[rule.operator]} {value}")
        groups.append(" && ".join(parts) if parts else "true")
    return "${" + " || ".join(groups) + "}"


class _Unreadable(ValueError):
    """Why an expression cannot be read; the message is shown to the user."""


class _ConditionParser:
    def __init__(self, body: str):
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(body):
            if not body[position:].strip():
                break
            match = _TOKEN.match(body, position)
            if not match:
                raise _Unreadable(_("unexpected “%(token)s”") % {"token": body[position:].split()[0][:20]})
            kind = match.lastgroup
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _Unreadable(_("it ends too early"))
        self.at += 1
        return token

    def unexpected(self, token: tuple[str, str]) -> _Unreadable:
        return _Unreadable(_("unexpected “%(token)s”") % {"token": token[1]})

    def parse(self) -> list[list[dict]]:
        groups = self.disjunction()
        token = self.peek()
        if token is not None:
            raise self.unexpected(token)
        return groups

    def disjunction(self) -> list[list[dict]]:
        groups = self.conjunction()
        while self.peek() in (("sym", "||"), ("name", "or")):
            self.take()
            groups = groups + self.conjunction()
            if len(groups) > MAX_GROUPS:
                raise _Unreadable(_("it expands to more than %(count)s OR groups") % {"count": MAX_GROUPS})
        return groups

    def conjunction(self) -> list[list[dict]]:
        groups = self.atom()
        while self.peek() in (("sym", "&&"), ("name", "and")):
            self.take()
            right = self.atom()
            groups = [left + more for left in groups for more in right]
            if len(groups) > MAX_GROUPS:
                raise _Unreadable(_("it expands to more than %(count)s OR groups") % {"count": MAX_GROUPS})
        return groups

    def atom(self) -> list[list[dict]]:
        token = self.take()
        if token == ("sym", "("):
            groups = self.disjunction()
            closing = self.take()
            if closing != ("sym", ")"):
                raise self.unexpected(closing)
            return groups
        if token == ("name", "true"):
            return [[]]
        if token[0] == "name":
            operator = self.operator()
            return [[{"field": token[1], "operator": operator, "value": self.value()}]]
        if token[0] in ("str", "num"):
            # `500000 <= amount` reads as `amount >= 500000`.
            operator = self.operator()
            name = self.take()
            if operator not in _MIRROR or name[0] != "name":
                raise self.unexpected(name)
            return [[{"field": name[1], "operator": _MIRROR[operator], "value": self.scalar(token)}]]
        raise self.unexpected(token)

    def operator(self) -> str:
        token = self.take()
        if token[0] == "sym" and token[1] in _SYMBOLS:
            return _SYMBOLS[token[1]]
        if token[0] == "name":
            if token[1] in _WORDS:
                return _WORDS[token[1]]
            if token[1] in ("in", "contains"):
                return token[1]
            if token[1] == "not":
                following = self.take()
                if following == ("name", "in"):
                    return "not_in"
                raise self.unexpected(following)
        raise self.unexpected(token)

    def value(self) -> str | list[str]:
        token = self.take()
        if token == ("sym", "["):
            values: list[str] = []
            if self.peek() == ("sym", "]"):
                self.take()
                return values
            while True:
                values.append(self.scalar(self.take()))
                separator = self.take()
                if separator == ("sym", "]"):
                    return values
                if separator != ("sym", ","):
                    raise self.unexpected(separator)
        return self.scalar(token)

    def scalar(self, token: tuple[str, str]) -> str:
        kind, text = token
        if kind == "num":
            return text
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S)
        if kind == "name" and text in ("true", "false"):
            return text
        raise self.unexpected(token)


def _expression_body(text: str) -> str:
    text = text.strip()
    if len(text) < 3 or text[:2] not in ("${", "#{") or not text.endswith("}"):
        raise _Unreadable(_("write it as ${…}"))
    return text[2:-1]


def parse_condition(text: str) -> Condition:
    """Read the JUEL text format_condition writes (also `and`/`or`, `ge`/`le`..., parentheses,
    single quotes, a number on the left) into a Condition. Fails with ValueError saying what is wrong."""
    groups = _ConditionParser(_expression_body(text)).parse()
    return Condition.model_validate({"any_of": groups})


# --- export -----------------------------------------------------------------------------------

_TASK_W, _TASK_H, _GATEWAY, _EVENT, _GAP, _ROW_GAP = 100, 80, 50, 36, 50, 30
_NCNAME = re.compile(r"[^\W\d.-][\w.-]*\Z")


def _ncname(text: str) -> str:
    if _NCNAME.match(text):
        return text
    cleaned = re.sub(r"[^\w.-]", "_", text) or "process"
    return cleaned if _NCNAME.match(cleaned) else f"_{cleaned}"


def _property_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _fits_list(value: str) -> bool:
    return bool(value) and "," not in value and value == value.strip() and "{" not in value


def _source_out(source: ApproverSource, prefix: str, camunda: bool) -> tuple[dict, list[tuple[str, str]]]:
    """Attributes and properties for an approver source; camunda attributes where they say it all."""
    attrs: dict[str, str] = {}
    props: list[tuple[str, str]] = []
    carried = None
    if camunda and source.source == "users" and source.users and all(_fits_list(u) for u in source.users):
        attrs["camunda:candidateUsers"] = ",".join(source.users)
        carried = "users"
    elif camunda and source.source == "role" and _fits_list(source.role):
        attrs["camunda:candidateGroups"] = source.role
        carried = "role"
    else:
        props.append((prefix, source.source))
    for name in SOURCE_FIELDS:
        value = getattr(source, name)
        if name != carried and value != ApproverSource.model_fields[name].default:
            props.append((f"{prefix}.{name}", _property_text(value)))
    return attrs, props


def _mode_from_loop(sequential: bool, completion: str) -> tuple[str, dict | None]:
    """(mode, quorum) as a multi-instance loop says; ValueError when the completion condition is not
    one EOMS reads."""
    if sequential:
        if completion:
            raise _Unreadable("sequential")
        return "sequence", None
    if not completion:
        return "all", None
    body = re.sub(r"\s+", "", _expression_body(completion))
    if body in ("nrOfCompletedInstances==nrOfInstances", "nrOfCompletedInstances>=nrOfInstances"):
        return "all", None
    match = re.fullmatch(r"nrOfCompletedInstances(>=|>)(\d+)", body)
    if match:
        count = int(match.group(2)) + (1 if match.group(1) == ">" else 0)
        if count < 1:
            raise _Unreadable(body)
        return ("any", None) if count == 1 else ("quorum", {"count": count})
    match = re.fullmatch(r"nrOfCompletedInstances/nrOfInstances>=(\d+(?:\.\d+)?)", body)
    if match:
        percent = Decimal(match.group(1)) * 100
        if percent != percent.to_integral_value() or not 1 <= percent <= 100:
            raise _Unreadable(body)
        return "quorum", {"percent": int(percent)}
    raise _Unreadable(body)


def _loop_out(node: ApprovalNode) -> tuple[tuple[bool, str], list[tuple[str, str]]]:
    """The multi-instance loop of a node, plus eoms:mode / eoms:quorum.* where the loop alone
    would read back differently (a quorum of 1, or a quorum that is not exactly one of count and percent)."""
    quorum = node.quorum
    if node.mode == "sequence":
        loop = (True, "")
    elif node.mode == "any":
        loop = (False, "${nrOfCompletedInstances >= 1}")
    elif node.mode == "quorum" and quorum and quorum.count and not quorum.percent:
        loop = (False, f"${{nrOfCompletedInstances >= {quorum.count}}}")
    elif node.mode == "quorum" and quorum and quorum.percent and not quorum.count:
        fraction = (Decimal(quorum.percent) / 100).normalize()
        loop = (False, f"${{nrOfCompletedInstances / nrOfInstances >= {fraction:f}}}")
    else:
        loop = (False, "")
    mode, read_quorum = _mode_from_loop(*loop)
    props = []
    if mode != node.mode:
        props.append(("eoms:mode", node.mode))
    wanted = quorum.model_dump(exclude_none=True) if quorum else None
    if wanted != read_quorum and quorum is not None:
        for name in ("count", "percent"):
            if getattr(quorum, name) is not None:
                props.append((f"eoms:quorum.{name}", str(getattr(quorum, name))))
    return loop, props


@dataclass
class _OutNode:
    tag: str
    id: str
    name: str = ""
    attrs: dict = field(default_factory=dict)
    props: list = field(default_factory=list)
    loop: tuple | None = None
    incoming: list = field(default_factory=list)
    outgoing: list = field(default_factory=list)
    default: str = ""
    join: bool = False


@dataclass
class _OutFlow:
    id: str
    source: str
    target: str
    name: str = ""
    condition: str = ""
    row_y: int | None = None


def _size(nodes) -> tuple[int, int]:
    """Width and height a list of nodes takes laid out left to right (an empty list: one row)."""
    if not nodes:
        return 0, _TASK_H
    sizes = [_node_size(n) for n in nodes]
    return sum(w for w, _h in sizes) + _GAP * (len(sizes) - 1), max(h for _w, h in sizes)


def _node_size(node) -> tuple[int, int]:
    if node.type in ("approval", "cc"):
        return _TASK_W, _TASK_H
    sizes = [_size(b.nodes) for b in node.branches]
    width = _GATEWAY + _GAP + max(w for w, _h in sizes) + _GAP + _GATEWAY
    return width, sum(h for _w, h in sizes) + _ROW_GAP * (len(sizes) - 1)


class _Exporter:
    def __init__(self, doc: Document):
        self.used: set[str] = set()
        self.ids: dict[int, str] = {}
        self.nodes: dict[str, _OutNode] = {}
        self.order: list[str] = []  # XML order: start, the nodes as a reader meets them, end
        self.flows: list[_OutFlow] = []
        self.bounds: dict[str, tuple[int, int, int, int]] = {}
        self.flow_number = 0
        # Document ids first, so that generated ids (and the process id) give way to them.
        self._claim_document(doc.nodes)

    def _claim_document(self, nodes) -> None:
        for node in nodes:
            self.ids[id(node)] = self.claim(node.id)
            if node.type in ("branch", "parallel"):
                for branch in node.branches:
                    self.ids[id(branch)] = self.claim(branch.id)
                    self._claim_document(branch.nodes)

    def claim(self, wanted: str) -> str:
        candidate, number = wanted, 1
        while candidate in self.used:
            number += 1
            candidate = f"{wanted}.{number}"
        self.used.add(candidate)
        return candidate

    def add(self, node: _OutNode, bounds: tuple[int, int, int, int], *, listed: bool = True) -> str:
        self.nodes[node.id] = node
        self.bounds[node.id] = bounds
        if listed:
            self.order.append(node.id)
        return node.id

    def connect(self, source: str, target: str, *, flow_id: str = "", name: str = "", condition: str = "", row_y=None):
        if not flow_id:
            self.flow_number += 1
            flow_id = self.claim(f"flow.{self.flow_number}")
        self.flows.append(_OutFlow(flow_id, source, target, name, condition, row_y))
        self.nodes[source].outgoing.append(flow_id)
        self.nodes[target].incoming.append(flow_id)
        return flow_id

    def chain(self, nodes, x: int, cy: int, source: str, pending: dict) -> tuple[str, int, dict]:
        """Lay `nodes` out from x on the row centred at cy, linked from `source`; the first flow takes
        `pending` (a branch's id, name, condition). Answers the last element, the next free x and what
        the next flow still has to carry (a branch with no nodes passes it on)."""
        for node in nodes:
            node_id = self.ids[id(node)]
            if node.type in ("approval", "cc"):
                self.add(self.task(node, node_id), (x, cy - _TASK_H // 2, _TASK_W, _TASK_H))
                self.connect(source, node_id, **pending)
                pending = {}
                source, x = node_id, x + _TASK_W + _GAP
                continue
            kind = "exclusiveGateway" if node.type == "branch" else "parallelGateway"
            width, height = _node_size(node)
            self.add(_OutNode(kind, node_id, node.name), (x, cy - _GATEWAY // 2, _GATEWAY, _GATEWAY))
            self.connect(source, node_id, **pending)
            pending = {}
            join_id = self.claim(f"{node_id}.join")
            join_x = x + width - _GATEWAY
            self.add(_OutNode(kind, join_id, join=True), (join_x, cy - _GATEWAY // 2, _GATEWAY, _GATEWAY), listed=False)
            top = cy - height // 2
            for branch in node.branches:
                _w, branch_height = _size(branch.nodes)
                row = top + branch_height // 2
                first = {"flow_id": self.ids[id(branch)], "name": branch.name, "row_y": row}
                if node.type == "branch" and not branch.default and branch.when is not None:
                    first["condition"] = format_condition(branch.when)
                last, _x, rest = self.chain(branch.nodes, x + _GATEWAY + _GAP, row, node_id, first)
                self.connect(last, join_id, **rest)
                if node.type == "branch" and branch.default and not self.nodes[node_id].default:
                    self.nodes[node_id].default = self.ids[id(branch)]
                top += branch_height + _ROW_GAP
            self.order.append(join_id)
            source, x = join_id, join_x + _GATEWAY + _GAP
        return source, x, pending

    def task(self, node, node_id: str) -> _OutNode:
        if node.type == "cc":
            _attrs, props = _source_out(node.recipients, "eoms:recipients", camunda=False)
            return _OutNode("sendTask", node_id, node.name, props=props)
        attrs, props = _source_out(node.approvers, "eoms:approvers", camunda=True)
        loop, mode_props = _loop_out(node)
        props += mode_props
        for setting in APPROVAL_SETTINGS:
            value = getattr(node, setting)
            if value != ApprovalNode.model_fields[setting].default:
                props.append((f"eoms:{setting}", _property_text(value)))
        return _OutNode("userTask", node_id, node.name, attrs=attrs, props=props, loop=loop)

    def waypoints(self, flow: _OutFlow) -> list[tuple[int, int]]:
        sx, sy, sw, sh = self.bounds[flow.source]
        tx, ty, tw, th = self.bounds[flow.target]
        scx, scy, tcx, tcy = sx + sw // 2, sy + sh // 2, tx + tw // 2, ty + th // 2
        splits = self.nodes[flow.source].tag in GATEWAYS and not self.nodes[flow.source].join
        merges = self.nodes[flow.target].join
        if splits and merges and flow.row_y is not None and flow.row_y != scy:
            # An empty branch: down (or up) to its row, along it, back to the join.
            out_y = sy + sh if flow.row_y > scy else sy
            in_y = ty + th if flow.row_y > tcy else ty
            return [(scx, out_y), (scx, flow.row_y), (tcx, flow.row_y), (tcx, in_y)]
        if scy == tcy:
            return [(sx + sw, scy), (tx, tcy)]
        if merges:
            return [(sx + sw, scy), (tcx, scy), (tcx, ty + th if scy > tcy else ty)]
        if splits:
            return [(scx, sy + sh if tcy > scy else sy), (scx, tcy), (tx, tcy)]
        middle = (sx + sw + tx) // 2
        return [(sx + sw, scy), (middle, scy), (middle, tcy), (tx, tcy)]


def _properties_element(parent: ET.Element, props: list[tuple[str, str]]) -> None:
    if not props:
        return
    container = ET.SubElement(ET.SubElement(parent, "bpmn:extensionElements"), "camunda:properties")
    for name, value in props:
        ET.SubElement(container, "camunda:property", {"name": name, "value": value})


def export_bpmn(doc: Document, *, key: str, name: str) -> bytes:
    """The document as a BPMN 2.0 file (UTF-8) with a left-to-right diagram; the same document gives
    the same bytes, and import_bpmn reads them back to an equal document (as long as rule fields are
    identifiers and ids are unique, which validate_document ensures). Never fails on a parsed
    document, even a draft validate_document would refuse: a repeated id gets a ".2" suffix."""
    doc = parse_document(doc)
    out = _Exporter(doc)
    process_id = out.claim(_ncname(key))
    start = out.claim("eoms.start")
    end = out.claim("eoms.end")
    _width, height = _size(doc.nodes)
    cy = 80 + height // 2
    out.add(_OutNode("startEvent", start), (150, cy - _EVENT // 2, _EVENT, _EVENT))
    last, x, pending = out.chain(doc.nodes, 150 + _EVENT + _GAP, cy, start, {})
    out.add(_OutNode("endEvent", end), (x, cy - _EVENT // 2, _EVENT, _EVENT))
    out.connect(last, end, **pending)
    ordered = out.order

    root = ET.Element(
        "bpmn:definitions",
        {
            "xmlns:bpmn": BPMN_NS,
            "xmlns:bpmndi": BPMNDI_NS,
            "xmlns:dc": DC_NS,
            "xmlns:di": DI_NS,
            "xmlns:xsi": XSI_NS,
            "xmlns:camunda": CAMUNDA_NS,
            "xmlns:modeler": MODELER_NS,
            "id": out.claim("eoms.definitions"),
            "targetNamespace": "https://eoms.dev/bpmn",
            "exporter": "EOMS",
            "exporterVersion": "1",
            "modeler:executionPlatform": "Camunda Platform",
            "modeler:executionPlatformVersion": "7.20.0",
        },
    )
    process = ET.SubElement(
        root, "bpmn:process", {"id": process_id, **({"name": name} if name else {}), "isExecutable": "true"}
    )
    process_props = [("eoms:on_reject", doc.on_reject)]
    if process_id != key:
        process_props.append(("eoms:key", key))
    _properties_element(process, process_props)
    for node_id in ordered:
        node = out.nodes[node_id]
        attrs = {"id": node.id, **({"name": node.name} if node.name else {}), **node.attrs}
        if node.default:
            attrs["default"] = node.default
        element = ET.SubElement(process, f"bpmn:{node.tag}", attrs)
        _properties_element(element, node.props)
        for flow_id in node.incoming:
            ET.SubElement(element, "bpmn:incoming").text = flow_id
        for flow_id in node.outgoing:
            ET.SubElement(element, "bpmn:outgoing").text = flow_id
        if node.loop is not None:
            sequential, completion = node.loop
            loop = ET.SubElement(
                element, "bpmn:multiInstanceLoopCharacteristics", {"isSequential": "true"} if sequential else {}
            )
            if completion:
                condition = ET.SubElement(loop, "bpmn:completionCondition", {"xsi:type": "bpmn:tFormalExpression"})
                condition.text = completion
    for flow in out.flows:
        attrs = {"id": flow.id, **({"name": flow.name} if flow.name else {})}
        element = ET.SubElement(
            process, "bpmn:sequenceFlow", {**attrs, "sourceRef": flow.source, "targetRef": flow.target}
        )
        if flow.condition:
            expression = ET.SubElement(element, "bpmn:conditionExpression", {"xsi:type": "bpmn:tFormalExpression"})
            expression.text = flow.condition

    diagram = ET.SubElement(root, "bpmndi:BPMNDiagram", {"id": out.claim("eoms.diagram")})
    plane = ET.SubElement(diagram, "bpmndi:BPMNPlane", {"id": out.claim("eoms.plane"), "bpmnElement": process_id})
    for node_id in ordered:
        attrs = {"id": out.claim(f"{node_id}.di"), "bpmnElement": node_id}
        if out.nodes[node_id].tag == "exclusiveGateway":
            attrs["isMarkerVisible"] = "true"
        shape = ET.SubElement(plane, "bpmndi:BPMNShape", attrs)
        bx, by, bw, bh = out.bounds[node_id]
        ET.SubElement(shape, "dc:Bounds", {"x": str(bx), "y": str(by), "width": str(bw), "height": str(bh)})
    for flow in out.flows:
        edge = ET.SubElement(plane, "bpmndi:BPMNEdge", {"id": out.claim(f"{flow.id}.di"), "bpmnElement": flow.id})
        for px, py in out.waypoints(flow):
            ET.SubElement(edge, "di:waypoint", {"x": str(px), "y": str(py)})
    ET.indent(root, space="  ")
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    return text.encode("utf-8")


# --- import -----------------------------------------------------------------------------------

END = " end"  # the one end all end events lead to; a space keeps it apart from every XML id


def _local(tag) -> tuple[str, str]:
    if isinstance(tag, str) and tag.startswith("{"):
        namespace, _sep, local = tag[1:].partition("}")
        return namespace, local
    return "", tag if isinstance(tag, str) else ""


def _bpmn(local: str) -> str:
    return f"{{{BPMN_NS}}}{local}"


@dataclass
class _Flow:
    id: str
    name: str
    source: str
    target: str
    condition: str | None
    groups: list | None = None


@dataclass
class _Element:
    tag: str
    id: str
    node: ET.Element
    incoming: list[_Flow] = field(default_factory=list)
    outgoing: list[_Flow] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.tag} '{self.id}'"


def _say(message: str, element: _Element, **extra) -> str:
    return message % {"type": element.tag, "id": element.id, **extra}


def _parse_xml(data: bytes) -> ET.Element:
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_BYTES:
        raise BpmnInvalid(
            [
                _("The file is larger than 2 MB (%(size)s bytes); EOMS imports BPMN files up to 2 MB.")
                % {"size": len(data)}
            ]
        )
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        raise BpmnInvalid([_("The file declares a DTD or entities; they are refused.")])
    except ET.ParseError as exc:
        raise BpmnInvalid([_("The file is not XML: %(error)s.") % {"error": exc}])


def _process_properties(node: ET.Element, known: tuple[str, ...], label: str, errors: list[str]) -> dict[str, str]:
    """The eoms: properties under a node's extensionElements (the first of a repeated name wins)."""
    found: dict[str, str] = {}
    extensions = node.find(_bpmn("extensionElements"))
    if extensions is None:
        return found
    for prop in extensions.iter(f"{{{CAMUNDA_NS}}}property"):
        name = (prop.get("name") or "").strip()
        if not name.startswith("eoms:"):
            continue
        if name not in known:
            errors.append(
                _("%(element)s: unknown property %(name)s; known: %(known)s.")
                % {"element": label, "name": name, "known": ", ".join(known)}
            )
            continue
        found.setdefault(name, prop.get("value") or "")
    return found


_VALID_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")


class _Importer:
    def __init__(self, process: ET.Element):
        self.process = process
        self.process_id = process.get("id") or ""
        self.elements: dict[str, _Element] = {}
        self.flows: list[_Flow] = []
        self.errors: list[str] = []
        self.origin: dict[str, str] = {}  # document id -> "userTask 'Task_1'"
        self.doc_ids: dict[str, str] = {}  # BPMN id -> document id

    def fail_if_errors(self) -> None:
        if self.errors:
            raise BpmnInvalid(self.errors)

    # phase 1: what is in the file

    def read(self) -> None:
        seen: set[str] = set()
        unsupported_ids: set[str] = set()
        for child in self.process:
            namespace, tag = _local(child.tag)
            if namespace != BPMN_NS or tag in IGNORED:
                continue
            element_id = (child.get("id") or "").strip()
            if not element_id:
                self.errors.append(_("A BPMN element %(type)s has no id; every element needs one.") % {"type": tag})
                continue
            if element_id in seen:
                self.errors.append(
                    _("%(type)s '%(id)s': another element has the same id; ids must be unique.")
                    % {"type": tag, "id": element_id}
                )
                continue
            seen.add(element_id)
            if tag == "sequenceFlow":
                expression = child.find(_bpmn("conditionExpression"))
                text = (expression.text or "").strip() if expression is not None else ""
                self.flows.append(
                    _Flow(
                        element_id,
                        (child.get("name") or "").strip(),
                        (child.get("sourceRef") or "").strip(),
                        (child.get("targetRef") or "").strip(),
                        text or None,
                    )
                )
                continue
            unsupported_ids.add(element_id)
            if tag not in FLOW_NODES:
                self.unsupported(tag, element_id)
                continue
            unsupported_part = self.unsupported_part(tag, child)
            if unsupported_part:
                self.unsupported(f"{tag} ({unsupported_part})", element_id)
                continue
            unsupported_ids.discard(element_id)
            self.elements[element_id] = _Element(tag, element_id, child)
        for flow in self.flows:
            for ref in (flow.source, flow.target):
                # A flow to an unsupported element is already reported as such.
                if ref not in self.elements and ref not in unsupported_ids:
                    self.errors.append(
                        _("sequenceFlow '%(id)s' connects '%(ref)s', which is not an element of the process.")
                        % {"id": flow.id, "ref": ref}
                    )
            if flow.source in self.elements and flow.target in self.elements:
                self.elements[flow.source].outgoing.append(flow)
                self.elements[flow.target].incoming.append(flow)
        self.fail_if_errors()

    def unsupported(self, kind: str, element_id: str) -> None:
        self.errors.append(
            _("Unsupported BPMN element %(type)s '%(id)s'; supported: %(supported)s.")
            % {"type": kind, "id": element_id, "supported": SUPPORTED}
        )

    @staticmethod
    def unsupported_part(tag: str, node: ET.Element) -> str:
        """A child that changes what a supported element does: an event definition (timer, message,
        terminate...) or a loop EOMS has no meaning for."""
        for child in node:
            namespace, local = _local(child.tag)
            if namespace != BPMN_NS:
                continue
            if tag in ("startEvent", "endEvent") and (
                local.endswith("EventDefinition") or local == "eventDefinitionRef"
            ):
                return local
            if tag in TASKS and local == "standardLoopCharacteristics":
                return local
            if tag == "sendTask" and local == "multiInstanceLoopCharacteristics":
                return local
        return ""

    # phase 2: is it a flow EOMS can run

    def check(self) -> tuple[str, dict[str, str]]:
        starts = [e for e in self.elements.values() if e.tag == "startEvent"]
        ends = [e for e in self.elements.values() if e.tag == "endEvent"]
        if not starts:
            self.errors.append(_("The process '%(id)s' has no start event.") % {"id": self.process_id})
        elif len(starts) > 1:
            self.errors.append(
                _("The process '%(id)s' has %(count)s start events (%(ids)s); EOMS flows have one.")
                % {"id": self.process_id, "count": len(starts), "ids": ", ".join(e.id for e in starts)}
            )
        if not ends:
            self.errors.append(_("The process '%(id)s' has no end event.") % {"id": self.process_id})
        self.fail_if_errors()
        start = starts[0]

        # Depth first from the start: a flow back to an element still on the path closes a loop.
        reached = {start.id: "open"}
        stack = [(start.id, iter(start.outgoing))]
        while stack:
            element_id, flows = stack[-1]
            flow = next(flows, None)
            if flow is None:
                reached[element_id] = "done"
                stack.pop()
                continue
            state = reached.get(flow.target)
            if state is None:
                reached[flow.target] = "open"
                stack.append((flow.target, iter(self.elements[flow.target].outgoing)))
            elif state == "open":
                self.errors.append(
                    _(
                        "sequenceFlow '%(id)s' from %(source)s back to %(target)s makes a loop; "
                        "EOMS flows only run forward."
                    )
                    % {
                        "id": flow.id,
                        "source": self.elements[flow.source].label,
                        "target": self.elements[flow.target].label,
                    }
                )
        finishing = {e.id for e in ends}
        queue = list(finishing)
        while queue:
            for flow in self.elements[queue.pop()].incoming:
                if flow.source not in finishing:
                    finishing.add(flow.source)
                    queue.append(flow.source)
        for element in self.elements.values():
            if element.id not in reached:
                self.errors.append(_say(_("%(type)s '%(id)s' cannot be reached from the start event."), element))
            elif element.id not in finishing:
                self.errors.append(_say(_("%(type)s '%(id)s' has no way to an end event."), element))
            self.check_element(element)
        self.fail_if_errors()
        return start.id, self.post_dominators()

    def check_element(self, element: _Element) -> None:
        out = len(element.outgoing)
        if element.tag == "endEvent" and out:
            self.errors.append(_say(_("endEvent '%(id)s' has outgoing flows; an end event ends the flow."), element))
        if element.tag in ("startEvent", *TASKS) and out > 1:
            self.errors.append(
                _say(
                    _("%(type)s '%(id)s' has %(count)s outgoing flows; only a gateway may split the flow."),
                    element,
                    count=out,
                )
            )
        if element.tag in GATEWAYS and out > 1 and len(element.incoming) > 1:
            self.errors.append(
                _say(
                    _("%(type)s '%(id)s' both joins and splits the flow; draw a converging and a diverging gateway."),
                    element,
                )
            )
        deciding = element.tag == "exclusiveGateway" and out > 1
        default = (element.node.get("default") or "").strip() if deciding else ""
        if default and default not in [f.id for f in element.outgoing]:
            self.errors.append(
                _say(_("%(type)s '%(id)s': its default flow '%(flow)s' does not leave it."), element, flow=default)
            )
        for flow in element.outgoing:
            if not deciding:
                if flow.condition is not None:
                    self.errors.append(
                        _(
                            "sequenceFlow '%(id)s' has a condition but does not leave a diverging exclusiveGateway; "
                            "EOMS tests conditions only there."
                        )
                        % {"id": flow.id}
                    )
                continue
            if flow.id == default:
                continue  # BPMN ignores a condition on the default flow
            if flow.condition is None:
                message = (
                    _(
                        "%(type)s '%(id)s': its flow '%(flow)s' has no condition and is not the default flow; "
                        "give it a condition."
                    )
                    if default
                    else _(
                        "%(type)s '%(id)s' has no default flow and its flow '%(flow)s' has no condition; "
                        "give every flow a condition or make one the default."
                    )
                )
                self.errors.append(_say(message, element, flow=flow.id))
                continue
            try:
                flow.groups = _ConditionParser(_expression_body(flow.condition)).parse()
            except _Unreadable as exc:
                self.errors.append(
                    _("sequenceFlow '%(id)s': the condition %(expression)s cannot be read (%(reason)s).")
                    % {"id": flow.id, "expression": flow.condition, "reason": exc}
                )

    def successors(self, element_id: str) -> list[str]:
        element = self.elements[element_id]
        return [END] if element.tag == "endEvent" else [f.target for f in element.outgoing]

    def post_dominators(self) -> dict[str, str]:
        """Immediate post-dominator of every element (Cooper, Harvey and Kennedy, on the reversed
        graph rooted at END): where all paths leaving an element meet again, its branches' join."""
        number: dict[str, int] = {}
        visited = {END}
        ends = [e.id for e in self.elements.values() if e.tag == "endEvent"]
        stack = [(END, iter(ends))]
        while stack:
            element_id, predecessors = stack[-1]
            following = next(predecessors, None)
            if following is None:
                number[element_id] = len(number)
                stack.pop()
            elif following not in visited:
                visited.add(following)
                stack.append((following, iter([f.source for f in self.elements[following].incoming])))
        dominator = {END: END}

        def meet(a: str, b: str) -> str:
            while a != b:
                while number[a] < number[b]:
                    a = dominator[a]
                while number[b] < number[a]:
                    b = dominator[b]
            return a

        # Acyclic by now, so one pass in reverse post order sees every successor first.
        for element_id in sorted(number, key=number.get, reverse=True)[1:]:
            joined = None
            for successor in self.successors(element_id):
                if successor in dominator:
                    joined = successor if joined is None else meet(successor, joined)
            dominator[element_id] = joined
        return dominator

    # phase 3: the tree

    def assign_ids(self) -> None:
        """Document ids for tasks, diverging gateways and the branches leaving them: a BPMN id the
        document accepts is kept; another is cleaned (A-Z, 0-9, _ and -, at most 40, starting with a
        letter) and numbered when taken. Kept ids are reserved first so a cleaned one never takes them."""
        wanted: list[tuple[str, str]] = []
        for element in self.elements.values():
            if element.tag in TASKS or (element.tag in GATEWAYS and len(element.outgoing) > 1):
                wanted.append((element.id, element.label))
                if element.tag in GATEWAYS:
                    wanted.extend((f.id, f"sequenceFlow '{f.id}'") for f in element.outgoing)
        taken = {bpmn_id for bpmn_id, _label in wanted if len(bpmn_id) <= 40 and _VALID_ID.match(bpmn_id)}
        for bpmn_id, label in wanted:
            if bpmn_id in taken:
                doc_id = bpmn_id
            else:
                base = re.sub(r"[^A-Za-z0-9_-]+", "_", bpmn_id)
                if not base[:1].isascii() or not base[:1].isalpha():
                    base = f"n{base}"
                base = base[:40]
                doc_id, number = base, 1
                while doc_id in taken:
                    number += 1
                    suffix = f"_{number}"
                    doc_id = base[: 40 - len(suffix)] + suffix
                taken.add(doc_id)
            self.doc_ids[bpmn_id] = doc_id
            self.origin[doc_id] = label

    def build(self, first: str, join_of: dict[str, str]) -> list[dict]:
        self.join_of = join_of
        self.assign_ids()
        nodes = self.sequence(first, END, None, 0)
        self.fail_if_errors()
        return nodes

    def not_block(self, owner: _Element | None, element: _Element) -> BpmnInvalid:
        if owner is None:
            return BpmnInvalid(
                [
                    _say(
                        _("EOMS flows are block-structured; %(type)s '%(id)s' joins flows that no gateway split."),
                        element,
                    )
                ]
            )
        return BpmnInvalid(
            [
                _say(
                    _(
                        "EOMS flows are block-structured; "
                        "the branches of %(type)s '%(id)s' do not join at one %(type)s."
                    ),
                    owner,
                )
            ]
        )

    def sequence(self, current: str, stop: str, owner: _Element | None, depth: int) -> list[dict]:
        """The nodes from `current` up to (not including) `stop`, the join of the enclosing block."""
        nodes: list[dict] = []
        joined = False  # `current` is the task a block's branches met at: it may have many incoming flows
        while current != stop:
            if current == END:
                raise self.not_block(owner, self.elements[stop])
            element = self.elements[current]
            if element.tag == "endEvent":
                current = END
                continue
            if len(element.incoming) > 1 and not joined:
                raise self.not_block(owner, element)
            joined = False
            if element.tag in TASKS:
                nodes.append(self.task(element))
                current = element.outgoing[0].target
                continue
            if len(element.outgoing) == 1:
                current = element.outgoing[0].target  # a gateway that neither splits nor joins
                continue
            if depth >= MAX_DEPTH:
                raise BpmnInvalid(
                    [
                        _say(
                            _("%(type)s '%(id)s' is nested more than %(count)s gateways deep."),
                            element,
                            count=MAX_DEPTH,
                        )
                    ]
                )
            join = self.join_of[current]
            join_tag = "" if join == END else self.elements[join].tag
            if join_tag not in (element.tag, "endEvent", "") and not (
                element.tag == "exclusiveGateway" and join_tag in TASKS
            ):
                raise self.not_block(element, element)
            nodes.append(self.block(element, join, depth))
            if join == stop:
                current = stop
            elif join == END or join_tag == "endEvent":
                current = END
            elif join_tag in GATEWAYS:
                current = self.elements[join].outgoing[0].target
            else:
                current, joined = join, True
        return nodes

    def block(self, element: _Element, join: str, depth: int) -> dict:
        default = (element.node.get("default") or "").strip()
        branches = []
        for flow in element.outgoing:
            branch = {
                "id": self.doc_ids[flow.id],
                "name": flow.name or flow.id,
                "nodes": self.sequence(flow.target, join, element, depth + 1),
            }
            if element.tag == "exclusiveGateway":
                if flow.id == default:
                    branch["default"] = True
                else:
                    branch["when"] = {"any_of": flow.groups}
            branches.append(branch)
        return {
            "type": "branch" if element.tag == "exclusiveGateway" else "parallel",
            "id": self.doc_ids[element.id],
            "name": (element.node.get("name") or "").strip() or element.id,
            "branches": branches,
        }

    def task(self, element: _Element) -> dict:
        name = (element.node.get("name") or "").strip() or element.id
        if element.tag == "sendTask":
            props = _process_properties(element.node, SEND_TASK_PROPERTIES, element.label, self.errors)
            return {
                "type": "cc",
                "id": self.doc_ids[element.id],
                "name": name,
                "recipients": self.source(element, props, "eoms:recipients"),
            }
        props = _process_properties(element.node, USER_TASK_PROPERTIES, element.label, self.errors)
        node = {
            "type": "approval",
            "id": self.doc_ids[element.id],
            "name": name,
            "approvers": self.source(element, props, "eoms:approvers"),
        }
        node["mode"], quorum = self.mode(element)
        if "eoms:mode" in props:
            node["mode"] = props["eoms:mode"]
        overrides = {n: props[f"eoms:quorum.{n}"] for n in ("count", "percent") if f"eoms:quorum.{n}" in props}
        quorum = overrides or quorum
        if quorum is not None:
            node["quorum"] = quorum
        for setting in APPROVAL_SETTINGS:
            if f"eoms:{setting}" in props:
                value = props[f"eoms:{setting}"]
                node[setting] = (
                    self.as_list(element, f"eoms:{setting}", value) if setting == "editable_fields" else value
                )
        return node

    def mode(self, element: _Element) -> tuple[str, dict | None]:
        loop = element.node.find(_bpmn("multiInstanceLoopCharacteristics"))
        if loop is None:
            return "any", None
        sequential = (loop.get("isSequential") or "").strip().lower() == "true"
        condition = loop.find(_bpmn("completionCondition"))
        completion = (condition.text or "").strip() if condition is not None else ""
        try:
            return _mode_from_loop(sequential, completion)
        except _Unreadable:
            if sequential:
                message = _(
                    "%(type)s '%(id)s': a sequential multi-instance task cannot end early; "
                    "remove its completion condition."
                )
            else:
                message = _(
                    "%(type)s '%(id)s': the completion condition %(expression)s cannot be read; EOMS reads "
                    "${nrOfCompletedInstances >= 2}, ${nrOfCompletedInstances / nrOfInstances >= 0.6} "
                    "or ${nrOfCompletedInstances == nrOfInstances}."
                )
            self.errors.append(_say(message, element, expression=completion))
            return "any", None

    def as_list(self, element: _Element, name: str, value: str) -> list[str]:
        text = value.strip()
        if not text.startswith("["):
            return [v.strip() for v in text.split(",") if v.strip()]
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str | int) and not isinstance(i, bool) for i in items):
            self.errors.append(
                _say(
                    _("%(type)s '%(id)s': property %(name)s “%(value)s” cannot be read."),
                    element,
                    name=name,
                    value=value,
                )
            )
            return []
        return [str(i) for i in items]

    def source(self, element: _Element, props: dict[str, str], prefix: str) -> dict:
        """An approver source from the eoms: properties, else from the assignment attributes a
        modeler writes (assignee, candidateUsers, candidateGroups)."""
        attributes = {}
        for attribute in ("assignee", "candidateUsers", "candidateGroups"):
            for namespace in ASSIGNMENT_NS:
                value = element.node.get(f"{{{namespace}}}{attribute}")
                if value is not None and value.strip():
                    attributes[attribute] = value.strip()
                    break
        # A multi-instance task assigns each instance from its loop variable (assignee "${approver}"
        # over collection "${approvers}"): that says nothing about who the approvers are.
        loop = element.node.find(_bpmn("multiInstanceLoopCharacteristics"))
        if loop is not None and "assignee" in attributes:
            for namespace in ASSIGNMENT_NS:
                variable = (loop.get(f"{{{namespace}}}elementVariable") or "").strip()
                if variable and re.sub(r"\s+", "", attributes["assignee"]) in (f"${{{variable}}}", f"#{{{variable}}}"):
                    del attributes["assignee"]
                    break

        def plain(attribute: str) -> str:
            value = attributes[attribute]
            if "${" in value or "#{" in value:
                self.errors.append(
                    _say(
                        _(
                            "%(type)s '%(id)s': camunda:%(attribute)s “%(value)s” is an expression; "
                            "EOMS needs user ids or a role here."
                        ),
                        element,
                        attribute=attribute,
                        value=value,
                    )
                )
            return value

        result: dict = {}
        if prefix in props:
            result["source"] = props[prefix]
        elif len(attributes) > 1:
            self.errors.append(
                _say(
                    _(
                        "%(type)s '%(id)s' sets more than one of camunda:assignee, camunda:candidateUsers and "
                        "camunda:candidateGroups; keep one, or set the property %(property)s."
                    ),
                    element,
                    property=prefix,
                )
            )
            return {"source": "users", "users": []}
        elif not attributes:
            self.errors.append(
                _say(
                    _(
                        "%(type)s '%(id)s' names no one to approve or inform; set camunda:assignee, "
                        "camunda:candidateUsers or camunda:candidateGroups, or the property %(property)s."
                    ),
                    element,
                    property=prefix,
                )
            )
            return {"source": "users", "users": []}
        else:
            result["source"] = "role" if "candidateGroups" in attributes else "users"
        if result["source"] == "users" and f"{prefix}.users" not in props:
            if "candidateUsers" in attributes:
                result["users"] = [u.strip() for u in plain("candidateUsers").split(",") if u.strip()]
            elif "assignee" in attributes:
                result["users"] = [plain("assignee")]
        if result["source"] == "role" and f"{prefix}.role" not in props and "candidateGroups" in attributes:
            role = plain("candidateGroups")
            if "," in role:
                self.errors.append(
                    _say(
                        _(
                            "%(type)s '%(id)s': camunda:candidateGroups “%(value)s” names more than one group; "
                            "EOMS takes one role."
                        ),
                        element,
                        value=role,
                    )
                )
            result["role"] = role
        for name in SOURCE_FIELDS:
            key = f"{prefix}.{name}"
            if key in props:
                result[name] = self.as_list(element, key, props[key]) if name == "users" else props[key]
        return result

    # phase 4: the document

    def document(self, data: dict) -> Document:
        try:
            return parse_document(data)
        except DocumentInvalid as exc:
            messages = []
            for error in exc.errors:
                parts = error["field"].split(".")[1:]
                owner, rest = self.locate(data, parts)
                element = self.origin.get(owner, f"process '{self.process_id}'")
                detail = f"{'.'.join(rest)}: {error['message']}" if rest else error["message"]
                messages.append(_("%(element)s: %(message)s") % {"element": element, "message": detail})
            raise BpmnInvalid(messages)

    @staticmethod
    def locate(data, parts: list[str]) -> tuple[str | None, list[str]]:
        """The innermost node or branch a pydantic error path points into, and the rest of the path."""
        current, owner, rest_from = data, None, 0
        for position, part in enumerate(parts):
            if isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            elif isinstance(current, dict) and part in current:
                current = current[part]
            elif isinstance(current, dict) and current.get("type") == part:
                rest_from = position + 1  # pydantic names the union member it tried
                continue
            else:
                break
            if isinstance(current, dict) and isinstance(current.get("id"), str):
                owner, rest_from = current["id"], position + 1
        return owner, parts[rest_from:]


def import_bpmn(data: bytes) -> tuple[Document, dict]:
    """Read one BPMN process into a document; answers it and {"key", "name"} of the process.

    Refuses, with BpmnInvalid listing every problem found at the stage that failed: a file over
    2 MB; anything that is not XML; a DTD or entity declaration (so no entity is ever expanded);
    no or several processes; any element but start/end event, user/send task, exclusive/parallel
    gateway and sequence flow; a flow that is not one start to reachable end events without loops;
    a decision without a condition or default; a condition it cannot read; gateways that do not
    nest as blocks. The result passes parse_document; validate_document still judges it against
    the subject's fields before publishing."""
    root = _parse_xml(data)
    if _local(root.tag) != (BPMN_NS, "definitions"):
        raise BpmnInvalid(
            [_("The file is not BPMN 2.0: its root element is %(tag)s, not bpmn:definitions.") % {"tag": root.tag}]
        )
    processes = root.findall(_bpmn("process"))
    if not processes:
        raise BpmnInvalid([_("The file holds no process; EOMS imports one BPMN process.")])
    if len(processes) > 1:
        raise BpmnInvalid(
            [
                _("The file holds %(count)s processes (%(ids)s); EOMS imports one BPMN process.")
                % {"count": len(processes), "ids": ", ".join(p.get("id") or "?" for p in processes)}
            ]
        )
    importer = _Importer(processes[0])
    importer.read()
    start_id, join_of = importer.check()
    start = importer.elements[start_id]
    nodes = importer.build(start.outgoing[0].target, join_of)
    label = f"process '{importer.process_id}'"
    props = _process_properties(processes[0], PROCESS_PROPERTIES, label, importer.errors)
    importer.fail_if_errors()
    data: dict = {"nodes": nodes}
    if "eoms:on_reject" in props:
        data["on_reject"] = props["eoms:on_reject"]
    doc = importer.document(data)
    key = props.get("eoms:key") or importer.process_id
    name = (processes[0].get("name") or "").strip() or key
    return doc, {"key": key, "name": name}
