"""The order lifecycle drawn as an SVG, derived from orders.state at call time.

Main-flow states (state.MAIN_FLOW) stand in one column, top to bottom; every other state (rejected,
on hold, cancelled, and any state added later) stands apart in a second column, level with the main
state it is first reached from. Arrows carry the transitions' labels:
- a move to the next main state is a short arrow down the column;
- any other move between main states loops round the left of the column;
- a move between a main and a side state is a straight line between the columns;
- a move from several states (cancel) is drawn once, as a bus between the columns collecting a tick
  from each source, with one arrow into the target.
No layout engine and no external library: the drawing is plain geometry, so a transition added to
state.TRANSITIONS appears without touching this file. All text is escaped.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.translation import gettext as _

from . import state as lifecycle

__all__ = ["state_diagram"]

BOX_W, BOX_H, ROW, TOP = 200, 36, 64, 28
MAIN_X = 220  # room on the left for loops and their labels
LOOP_GAP, LOOP_STEP = 26, 16
BUS_GAP, BUS_STEP = 70, 16  # the first bus this far right of the main column; the next ones further
SIDE_GAP = 150  # between the last bus and the side column: room for the labels of lines across
FONT = "system-ui, -apple-system, 'Segoe UI', 'PingFang SC', 'Microsoft YaHei', sans-serif"
COLOURS = {"primary": "#4a5a72", "success": "#2fb344", "danger": "#d63939", "warning": "#f76707"}
CURRENT = "#066fd1"


@dataclass
class _Box:
    state: str
    label: str
    x: float
    y: float
    main: bool
    ports: dict = field(default_factory=lambda: {"left": [], "right": []})

    @property
    def cx(self) -> float:
        return self.x + BOX_W / 2

    @property
    def cy(self) -> float:
        return self.y + BOX_H / 2


def _text(x, y, content, *, anchor="start", size=11, colour="#1d273b", weight="normal", extra="") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{colour}" '
        f'font-weight="{weight}"{extra}>{escape(content)}</text>'
    )


def _labels() -> tuple[dict[str, str], list[str]]:
    """Every state's label, in OrderState order; a state named only in TRANSITIONS is included too."""
    labels = {value: str(label) for value, label in lifecycle.OrderState.choices}
    order = list(labels)
    for t in lifecycle.TRANSITIONS:
        for s in (*t.sources, t.target):
            if s not in labels:
                labels[s] = str(s)
                order.append(s)
    return labels, order


def state_diagram(current: str | None = None, *, title: str | None = None) -> str:
    """The lifecycle as an SVG document fragment; `current`, when given, is highlighted."""
    transitions = tuple(lifecycle.TRANSITIONS)
    labels, all_states = _labels()
    main = [s for s in lifecycle.MAIN_FLOW if s in labels]
    side = [s for s in all_states if s not in main]
    index = {s: i for i, s in enumerate(main)}

    multi = [t for t in transitions if len(t.sources) > 1]
    single = [(t, t.sources[0]) for t in transitions if len(t.sources) == 1]
    bus_x = {t.name: MAIN_X + BOX_W + BUS_GAP + BUS_STEP * k for k, t in enumerate(multi)}
    side_x = MAIN_X + BOX_W + BUS_GAP + BUS_STEP * max(len(multi) - 1, 0) + SIDE_GAP

    # Side states stand level with the main state they are first reached from (or first lead to);
    # the others, e.g. reached only from many states at once, go below, one row each.
    wanted: dict[str, int] = {}
    for t, src in single:
        if t.target in side and src in index:
            wanted.setdefault(t.target, index[src])
    for t, src in single:
        if src in side and t.target in index:
            wanted.setdefault(src, index[t.target])
    rows: dict[str, int] = {}
    taken: set[int] = set()
    for s in sorted((s for s in side if s in wanted), key=lambda s: wanted[s]):
        row = wanted[s]
        while row in taken:
            row += 1
        rows[s] = row
        taken.add(row)
    for t in multi:
        if t.target in side and t.target not in rows:
            row = max((index.get(s, rows.get(s, 0)) for s in t.sources), default=0) + 1
            while row in taken:
                row += 1
            rows[t.target] = row
            taken.add(row)
    for s in side:
        if s not in rows:
            row = max([*taken, len(main) - 1]) + 1
            rows[s] = row
            taken.add(row)

    boxes = {s: _Box(s, labels[s], MAIN_X, TOP + ROW * i, True) for i, s in enumerate(main)}
    boxes.update({s: _Box(s, labels[s], side_x, TOP + ROW * rows[s], False) for s in side})

    # Plan every edge, asking the boxes for ports on the side each edge leaves or enters.
    plans = []
    loops_left = loops_right = 0
    for t, src in single:
        a, b = boxes[src], boxes[t.target]
        if a.main and b.main and index[t.target] == index[src] + 1:
            plans.append(("down", t, a, b, None))
        elif a.main and b.main:
            plans.append(("loop_left", t, a, b, loops_left))
            loops_left += 1
            a.ports["left"].append((t.name, "out", b.cy))
            b.ports["left"].append((t.name, "in", a.cy))
        elif not a.main and not b.main:
            plans.append(("loop_right", t, a, b, loops_right))
            loops_right += 1
            a.ports["right"].append((t.name, "out", b.cy))
            b.ports["right"].append((t.name, "in", a.cy))
        else:
            plans.append(("across", t, a, b, None))
            a.ports["right" if a.main else "left"].append((t.name, "out", b.cy))
            b.ports["right" if b.main else "left"].append((t.name, "in", a.cy))
    for t in multi:
        plans.append(("bus", t, None, boxes[t.target], None))
        for s in t.sources:
            box = boxes[s]
            if box.main:  # a side state's tick leaves from its bottom edge, clear of the lines across
                box.ports["right"].append((t.name, "out", boxes[t.target].cy))
        target = boxes[t.target]
        target.ports["right" if target.main else "left"].append((t.name, "in", target.cy))

    label_x = max([MAIN_X + BOX_W, *bus_x.values()]) + 8
    port_y: dict[tuple, float] = {}
    for box in boxes.values():
        for side_name, requests in box.ports.items():
            requests.sort(key=lambda r: (r[2], r[0], r[1]))
            for k, (name, direction, _other) in enumerate(requests):
                port_y[(box.state, side_name, name, direction)] = box.y + BOX_H * (k + 1) / (len(requests) + 1)

    def port(box: _Box, side_name: str, name: str, direction: str) -> tuple[float, float]:
        x = box.x if side_name == "left" else box.x + BOX_W
        return x, port_y[(box.state, side_name, name, direction)]

    pairs: dict[frozenset, list[tuple[float, str]]] = defaultdict(list)
    for kind, t, a, _b, _k in plans:
        if kind == "across":
            y = port(a, "right" if a.main else "left", t.name, "out")[1]
            pairs[frozenset((a.state, _b.state))].append((y, t.name))

    width = side_x + BOX_W + 30 + LOOP_STEP * loops_right + (140 if loops_right else 0)
    height = TOP + ROW * (max([len(main) - 1, *rows.values()]) + 1) + 10
    diagram_title = title or _("Order lifecycle")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" class="eoms-state-diagram" '
        f'font-family="{escape(FONT)}">',
        f"<title>{escape(diagram_title)}</title>",
        "<defs>",
        *(
            f'<marker id="eoms-arrow-{style}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
            for style, colour in COLOURS.items()
        ),
        "</defs>",
    ]

    for kind, t, a, b, k in plans:
        colour = COLOURS.get(t.style, COLOURS["primary"])
        marker = f'marker-end="url(#eoms-arrow-{t.style if t.style in COLOURS else "primary"})"'
        stroke = f'stroke="{colour}" stroke-width="1.4" fill="none"'
        label = str(t.label)
        sources = ", ".join(labels[s] for s in t.sources)
        parts = [
            f'<g class="transition" data-transition="{escape(t.name)}">',
            f"<title>{escape(label)}: {escape(sources)} → {escape(labels[t.target])}</title>",
        ]
        if kind == "down":
            y1, y2 = a.y + BOX_H, b.y
            parts.append(f'<path d="M{a.cx:.1f},{y1:.1f} L{a.cx:.1f},{y2 - 1:.1f}" {stroke} {marker}/>')
            parts.append(_text(a.cx + 8, (y1 + y2) / 2 + 4, label))
        elif kind == "loop_left":
            x1, y1 = port(a, "left", t.name, "out")
            x2, y2 = port(b, "left", t.name, "in")
            lx = MAIN_X - LOOP_GAP - LOOP_STEP * k
            parts.append(
                f'<path d="M{x1:.1f},{y1:.1f} L{lx:.1f},{y1:.1f} L{lx:.1f},{y2:.1f} L{x2 - 1:.1f},{y2:.1f}" '
                f"{stroke} {marker}/>"
            )
            parts.append(_text(lx - 4, (y1 + y2) / 2 + 4, label, anchor="end"))
        elif kind == "loop_right":
            x1, y1 = port(a, "right", t.name, "out")
            x2, y2 = port(b, "right", t.name, "in")
            lx = side_x + BOX_W + LOOP_GAP + LOOP_STEP * k
            parts.append(
                f'<path d="M{x1:.1f},{y1:.1f} L{lx:.1f},{y1:.1f} L{lx:.1f},{y2:.1f} L{x2 + 1:.1f},{y2:.1f}" '
                f"{stroke} {marker}/>"
            )
            parts.append(_text(lx + 4, (y1 + y2) / 2 + 4, label))
        elif kind == "across":
            x1, y1 = port(a, "right" if a.main else "left", t.name, "out")
            x2, y2 = port(b, "right" if b.main else "left", t.name, "in")
            parts.append(f'<path d="M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}" {stroke} {marker}/>')
            # The label starts just right of the buses, on the line; of several lines between the same
            # two boxes, the top one has its label above it, the others below.
            lx = label_x
            ly = y1 + (y2 - y1) * (lx - x1) / (x2 - x1) if x2 != x1 else y1
            above = min(pairs[frozenset((a.state, b.state))])[1] == t.name
            parts.append(_text(lx, ly + (-4 if above else 12), label))
        else:  # bus
            bx = bus_x[t.name]
            ys = []
            for s in t.sources:
                box = boxes[s]
                if box.main:
                    sx, sy = port(box, "right", t.name, "out")
                    d = f"M{sx:.1f},{sy:.1f} L{bx:.1f},{sy:.1f}"
                else:
                    sx, sy = box.x + 16, box.y + BOX_H + 10
                    d = f"M{sx:.1f},{box.y + BOX_H:.1f} L{sx:.1f},{sy:.1f} L{bx:.1f},{sy:.1f}"
                parts.append(f'<path d="{d}" {stroke} stroke-dasharray="3 2"/>')
                parts.append(f'<circle cx="{bx:.1f}" cy="{sy:.1f}" r="2" fill="{colour}"/>')
                ys.append(sy)
            tx, ty = port(b, "right" if b.main else "left", t.name, "in")
            ys.append(ty)
            parts.append(f'<path d="M{bx:.1f},{min(ys):.1f} L{bx:.1f},{max(ys):.1f}" {stroke}/>')
            end = tx - 1 if tx > bx else tx + 1
            parts.append(f'<path d="M{bx:.1f},{ty:.1f} L{end:.1f},{ty:.1f}" {stroke} {marker}/>')
            parts.append(_text(min(bx, tx) + 4, ty - 5, label))
        parts.append("</g>")
        out.extend(parts)

    for box in boxes.values():
        is_current = box.state == current
        fill = CURRENT if is_current else ("#ffffff" if box.main else "#f6f8fb")
        stroke = CURRENT if is_current else "#9aa5b8"
        dash = "" if box.main or is_current else ' stroke-dasharray="5 3"'
        classes = "state current" if is_current else ("state" if box.main else "state side")
        extra = ' aria-current="step"' if is_current else ""
        out.append(f'<g class="{classes}" data-state="{escape(box.state)}"{extra}>')
        out.append(f"<title>{escape(box.label)} ({escape(box.state)})</title>")
        out.append(
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{2 if is_current else 1.2}"{dash}/>'
        )
        out.append(
            _text(
                box.cx,
                box.cy + 4,
                box.label,
                anchor="middle",
                size=12,
                colour="#ffffff" if is_current else "#1d273b",
                weight="600" if is_current else "normal",
            )
        )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
