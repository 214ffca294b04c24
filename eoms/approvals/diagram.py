"""An approval flow drawn as an SVG, top to bottom, from its document alone.

Start, then each node in document order, then end, joined by arrows down one centre line:
- an approval node is a box: its name, who approves, and the mode (and SLA);
- a CC node is a dashed box: its name and who is copied;
- a branch node is a diamond with its name; its branches stand side by side below it, each under a
  label with its condition ("otherwise" for the default), and meet again on a bar below the
  tallest branch;
- a parallel node is a dark fork bar with its name; its branches stand side by side, each under
  its name, and join on a thick bar.
Nesting is recursive, so a flow of any depth is drawn the same way. Pure geometry from the
document, no request, no database: the same document gives the same bytes, and the task page can
highlight the active nodes of a running instance with `active_nodes`. Every text is escaped; a text
too long for its box is cut with "…" and given whole in the element's <title>.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.translation import gettext as _

from eoms.accounts.roles import Role

from .definition import Document, describe_condition, parse_document

__all__ = ["flow_svg", "approver_summary", "mode_summary"]

FONT = "system-ui, -apple-system, 'Segoe UI', 'PingFang SC', 'Microsoft YaHei', sans-serif"
BOX_W, BOX_H = 240, 64
PILL_W, PILL_H = 96, 28
DIAMOND_W, DIAMOND_H = 200, 52
FORK_W, FORK_H = 180, 26
LABEL_W, LABEL_H = 200, 40
ARROW = 28  # the gap between two stacked items, crossed by an arrow
BUS = 16  # from a diamond or fork down to the bus over its branches, and from the bus to a label
COL_GAP = 28
EMPTY_H = 12  # an empty branch: a plain line
MARGIN = 16
INK, MUTED, LINE = "#1d273b", "#616876", "#4a5a72"
PROBLEM, ACTIVE = "#d63939", "#066fd1"


# --- text -------------------------------------------------------------------------------------------


def _char_width(ch: str, size: float) -> float:
    """Rough advance of one character: wide (CJK, full-width) characters are a full em."""
    return size if unicodedata.east_asian_width(ch) in ("W", "F") else size * 0.56


def _fit(text: str, width: float, size: float) -> str:
    text = " ".join(str(text).split())
    used = 0.0
    for i, ch in enumerate(text):
        used += _char_width(ch, size)
        if used > width:
            cut = text[:i]
            while cut and sum(_char_width(c, size) for c in cut) + size > width:
                cut = cut[:-1]
            return cut.rstrip() + "…"
    return text


def _lines(text: str, width: float, size: float, max_lines: int = 2) -> list[str]:
    """Greedy wrap on spaces (or anywhere, for text without spaces such as Chinese), cut on the
    last line."""
    text = " ".join(str(text).split())
    out: list[str] = []
    while text and len(out) < max_lines - 1:
        used, cut, last_space = 0.0, len(text), -1
        for i, ch in enumerate(text):
            if ch == " ":
                last_space = i
            used += _char_width(ch, size)
            if used > width:
                cut = last_space if last_space > 0 else i
                break
        if cut >= len(text):
            break
        out.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        out.append(_fit(text, width, size))
    return out


def _text(x, y, content, *, anchor="middle", size=12, colour=INK, weight="normal") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{colour}" '
        f'font-weight="{weight}">{escape(content)}</text>'
    )


def _arrow(x, y1, y2) -> str:
    return (
        f'<path d="M{x:.1f},{y1:.1f} L{x:.1f},{y2 - 1:.1f}" stroke="{LINE}" stroke-width="1.4" fill="none" '
        'marker-end="url(#eoms-flow-arrow)"/>'
    )


def _line(x1, y1, x2, y2, *, width: float = 1.4) -> str:
    return f'<path d="M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}" stroke="{LINE}" stroke-width="{width}" fill="none"/>'


# --- what a node does, in words ----------------------------------------------------------------------


def approver_summary(source, user_names: dict | None = None) -> str:
    """Who a source names, in a few words: "Role: Approver", "Managers up to level 2, in turn"."""
    if source.source == "users":
        names = [str((user_names or {}).get(u, "")) for u in source.users]
        if names and all(names):
            return ", ".join(names)
        return _("%(count)s named users") % {"count": len(source.users)}
    if source.source == "role":
        label = Role(source.role).label if source.role in Role.values else (source.role or "?")
        return _("Role: %(role)s") % {"role": label}
    if source.source == "project_role":
        return _("The project's PM") if source.project_role == "pm" else _("The project's engineers")
    if source.source == "manager":
        if source.levels == 1:
            return _("The initiator's manager")
        if source.chain:
            return _("Managers up to level %(n)s, in turn") % {"n": source.levels}
        return _("The manager %(n)s levels up") % {"n": source.levels}
    if source.source == "picked":
        return _("Picked at submission")
    return _("Field: %(field)s") % {"field": source.field or "?"}


def mode_summary(node) -> str:
    """或签, 会签, 依次 or a quorum, in words."""
    if node.mode == "all":
        return _("All must approve")
    if node.mode == "sequence":
        return _("One after another")
    if node.mode == "quorum" and node.quorum is not None:
        if node.quorum.count:
            return _("Quorum: %(count)s approvals") % {"count": node.quorum.count}
        if node.quorum.percent:
            return _("Quorum: %(percent)s%% of approvers") % {"percent": node.quorum.percent}
    if node.mode == "quorum":
        return _("Quorum")
    return _("Any one approves")


# --- layout ----------------------------------------------------------------------------------------


@dataclass
class _Style:
    problems: frozenset
    active: frozenset
    fields: dict
    user_names: dict


@dataclass
class _Block:
    """Something of size w x h drawn centred on a vertical line; `draw(cx, top)` returns its SVG."""

    w: float
    h: float
    parts: list = field(default_factory=list)

    def draw(self, cx: float, top: float) -> list[str]:
        raise NotImplementedError


class _Pill(_Block):
    def __init__(self, label: str, kind: str):
        super().__init__(PILL_W, PILL_H)
        self.label, self.kind = label, kind

    def draw(self, cx, top):
        return [
            f'<g class="terminal" data-node="{self.kind}">',
            f'<rect x="{cx - PILL_W / 2:.1f}" y="{top:.1f}" width="{PILL_W}" height="{PILL_H}" rx="{PILL_H / 2}" '
            f'fill="#f6f8fb" stroke="#9aa5b8" stroke-width="1.2"/>',
            _text(cx, top + PILL_H / 2 + 4, _fit(self.label, PILL_W - 12, 12), colour=MUTED),
            "</g>",
        ]


def _node_attrs(node_id: str, kind: str, style: _Style) -> tuple[str, bool, bool]:
    problem = node_id in style.problems
    active = node_id in style.active
    classes = " ".join(c for c in ("node", kind, "problem" if problem else "", "active" if active else "") if c)
    extra = ' aria-current="step"' if active else ""
    return f'<g class="{classes}" data-node="{escape(node_id)}"{extra}>', problem, active


class _Box(_Block):
    """An approval or CC node."""

    def __init__(self, node, style: _Style):
        super().__init__(BOX_W, BOX_H)
        self.node, self.style = node, style

    def draw(self, cx, top):
        node, style = self.node, self.style
        head, problem, active = _node_attrs(node.id, node.type, style)
        if node.type == "approval":
            who = approver_summary(node.approvers, style.user_names)
            how = mode_summary(node)
            if node.sla_hours:
                how = _("%(mode)s · SLA %(hours)s h") % {"mode": how, "hours": f"{node.sla_hours.normalize():f}"}
            title = f"{node.name}: {who}; {how}"
        else:
            who = _("CC: %(who)s") % {"who": approver_summary(node.recipients, style.user_names)}
            how = ""
            title = f"{node.name}: {who}"
        fill = ACTIVE if active else ("#ffffff" if node.type == "approval" else "#f6f8fb")
        stroke = PROBLEM if problem else (ACTIVE if active else ("#4a5a72" if node.type == "approval" else "#9aa5b8"))
        dash = ' stroke-dasharray="5 3"' if node.type == "cc" and not active else ""
        ink, muted = ("#ffffff", "#ffffff") if active else (INK, MUTED)
        x = cx - BOX_W / 2
        out = [
            head,
            f"<title>{escape(title)}</title>",
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{2 if problem or active else 1.2}"{dash}/>',
        ]
        name_y = top + (20 if how else 26)
        out.append(_text(cx, name_y, _fit(node.name, BOX_W - 16, 13), size=13, colour=ink, weight="600"))
        out.append(_text(cx, name_y + 18, _fit(who, BOX_W - 16, 11), size=11, colour=muted))
        if how:
            out.append(_text(cx, name_y + 34, _fit(how, BOX_W - 16, 11), size=11, colour=muted))
        if problem:
            out.append(
                f'<circle cx="{x + BOX_W - 2:.1f}" cy="{top + 2:.1f}" r="8" fill="{PROBLEM}"/>'
                + _text(x + BOX_W - 2, top + 6, "!", size=11, colour="#ffffff", weight="700")
            )
        out.append("</g>")
        return out


class _Sequence(_Block):
    def __init__(self, blocks: list[_Block]):
        w = max((b.w for b in blocks), default=0)
        h = sum(b.h for b in blocks) + ARROW * max(len(blocks) - 1, 0) if blocks else 0
        super().__init__(w, h)
        self.blocks = blocks

    def draw(self, cx, top):
        out: list[str] = []
        y = top
        for i, block in enumerate(self.blocks):
            if i:
                out.append(_arrow(cx, y - ARROW, y))
            out.extend(block.draw(cx, y))
            y += block.h + ARROW
        return out


class _Split(_Block):
    """A branch (exclusive) or parallel node: a head, the branches side by side, a join."""

    def __init__(self, node, style: _Style):
        self.node, self.style = node, style
        self.columns = [(branch, _sequence(branch.nodes, style)) for branch in node.branches]
        self.col_w = [max(seq.w, LABEL_W) for _b, seq in self.columns]
        self.inner_w = sum(self.col_w) + COL_GAP * max(len(self.col_w) - 1, 0)
        head_h = DIAMOND_H if node.type == "branch" else FORK_H
        tallest = max((seq.h for _b, seq in self.columns), default=0)
        self.head_h = head_h
        self.body_h = max(tallest, EMPTY_H)
        h = head_h + BUS + BUS + LABEL_H + ARROW + self.body_h + BUS + BUS
        super().__init__(max(self.inner_w, DIAMOND_W if node.type == "branch" else FORK_W), h)

    def _label(self, branch) -> tuple[str, str]:
        if self.node.type == "parallel":
            return branch.name, branch.name
        condition = describe_condition(None if branch.default else branch.when, self.style.fields)
        return condition, f"{branch.name}: {condition}"

    def draw(self, cx, top):
        node, style = self.node, self.style
        head, problem, active = _node_attrs(node.id, node.type, style)
        stroke = PROBLEM if problem else (ACTIVE if active else LINE)
        out = [head, f"<title>{escape(node.name)}</title>"]
        if node.type == "branch":
            hw, hh = DIAMOND_W / 2, DIAMOND_H / 2
            out.append(
                f'<path d="M{cx:.1f},{top:.1f} L{cx + hw:.1f},{top + hh:.1f} L{cx:.1f},{top + DIAMOND_H:.1f} '
                f'L{cx - hw:.1f},{top + hh:.1f} Z" fill="{"#e9f0fb" if not active else ACTIVE}" stroke="{stroke}" '
                f'stroke-width="{2 if problem or active else 1.2}"/>'
            )
            out.append(
                _text(cx, top + hh + 4, _fit(node.name, DIAMOND_W - 60, 12), colour="#ffffff" if active else INK)
            )
        else:
            out.append(
                f'<rect x="{cx - FORK_W / 2:.1f}" y="{top:.1f}" width="{FORK_W}" height="{FORK_H}" rx="4" '
                f'fill="{ACTIVE if active else "#354052"}" stroke="{stroke}" stroke-width="{2 if problem else 1}"/>'
            )
            out.append(
                _text(cx, top + FORK_H / 2 + 4, _fit(f"⇉ {node.name}", FORK_W - 12, 12), colour="#ffffff", weight="600")
            )
        out.append("</g>")

        bus1 = top + self.head_h + BUS
        out.append(_line(cx, top + self.head_h, cx, bus1))
        left = cx - self.inner_w / 2
        centres = []
        for w in self.col_w:
            centres.append(left + w / 2)
            left += w + COL_GAP
        if len(centres) > 1:
            out.append(_line(centres[0], bus1, centres[-1], bus1))
        label_top = bus1 + BUS
        body_top = label_top + LABEL_H + ARROW
        bus2 = body_top + self.body_h + BUS
        for (branch, seq), c in zip(self.columns, centres, strict=True):
            out.append(_line(c, bus1, c, label_top))
            text, title = self._label(branch)
            bad = branch.id in style.problems
            default = node.type == "branch" and branch.default
            dash = ' stroke-dasharray="4 3"' if default else ""
            classes = "branch-label" + (" problem" if bad else "") + (" default" if default else "")
            out.append(f'<g class="{classes}" data-node="{escape(branch.id)}"><title>{escape(title)}</title>')
            out.append(
                f'<rect x="{c - LABEL_W / 2:.1f}" y="{label_top:.1f}" width="{LABEL_W}" height="{LABEL_H}" '
                f'rx="{LABEL_H / 2}" '
                f'fill="{"#fff4f4" if bad else "#ffffff"}" stroke="{PROBLEM if bad else "#9aa5b8"}" '
                f'stroke-width="{2 if bad else 1}"{dash}/>'
            )
            lines = _lines(text, LABEL_W - 24, 11)
            first = label_top + LABEL_H / 2 + 4 - 7 * (len(lines) - 1)
            for k, line in enumerate(lines):
                out.append(_text(c, first + 14 * k, line, size=11, colour=MUTED))
            out.append("</g>")
            if seq.blocks:
                out.append(_arrow(c, label_top + LABEL_H, body_top))
                out.extend(seq.draw(c, body_top))
                out.append(_line(c, body_top + seq.h, c, bus2))
            else:
                out.append(_line(c, label_top + LABEL_H, c, bus2))
        if node.type == "branch":
            if len(centres) > 1:
                out.append(_line(centres[0], bus2, centres[-1], bus2))
        else:
            out.append(
                f'<rect x="{centres[0] - 20:.1f}" y="{bus2 - 3:.1f}" width="{centres[-1] - centres[0] + 40:.1f}" '
                f'height="6" rx="2" fill="#354052"/>'
            )
        out.append(_line(cx, bus2, cx, bus2 + BUS))
        return out


def _block(node, style: _Style) -> _Block:
    if node.type in ("approval", "cc"):
        return _Box(node, style)
    return _Split(node, style)


def _sequence(nodes, style: _Style) -> _Sequence:
    return _Sequence([_block(n, style) for n in nodes])


def flow_svg(
    doc,
    *,
    problems_nodes=frozenset(),
    active_nodes=frozenset(),
    fields: dict | None = None,
    user_names: dict | None = None,
    title: str | None = None,
) -> str:
    """The flow `doc` (a Document or its JSON) as an SVG document fragment. Nodes and branches
    whose id is in `problems_nodes` are outlined in red; those in `active_nodes` are filled.
    `fields` (name -> FieldSpec) gives conditions their labels; `user_names` (id -> name) names the
    users of a "named users" source. Raises DocumentInvalid when `doc` is not a document."""
    doc: Document = parse_document(doc)
    style = _Style(frozenset(problems_nodes or ()), frozenset(active_nodes or ()), fields or {}, user_names or {})
    blocks = [_Pill(_("Start"), "start"), *(_block(n, style) for n in doc.nodes), _Pill(_("End"), "end")]
    flow = _Sequence(blocks)
    width = flow.w + 2 * MARGIN
    height = flow.h + 2 * MARGIN
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" role="img" class="eoms-flow-diagram" font-family="{escape(FONT)}">',
        f"<title>{escape(title or _('Approval flow'))}</title>",
        '<defs><marker id="eoms-flow-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{LINE}"/></marker></defs>',
        *flow.draw(width / 2, MARGIN),
        "</svg>",
    ]
    return "\n".join(out)
