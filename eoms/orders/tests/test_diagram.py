import re
from xml.etree import ElementTree

import pytest
from django.utils import translation

from eoms.accounts.roles import Role
from eoms.orders import state
from eoms.orders.diagram import state_diagram
from eoms.orders.state import OrderState, Transition

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # well-formed XML, or this raises


def _groups(root, cls: str) -> dict[str, ElementTree.Element]:
    key = "data-state" if cls == "state" else "data-transition"
    return {g.get(key): g for g in root.iter(f"{SVG}g") if cls in (g.get("class") or "").split()}


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def test_every_state_is_a_box_with_its_label():
    root = _parse(state_diagram())
    states = _groups(root, "state")
    assert set(states) == set(OrderState.values)
    for value, label in OrderState.choices:
        texts = [t.text for t in states[value].iter(f"{SVG}text")]
        assert texts == [str(label)]
        assert states[value].find(f"{SVG}rect") is not None


def test_every_transition_is_drawn_with_its_label_and_an_arrow():
    root = _parse(state_diagram())
    drawn = _groups(root, "transition")
    assert set(drawn) == {t.name for t in state.TRANSITIONS}
    for t in state.TRANSITIONS:
        g = drawn[t.name]
        assert [x.text for x in g.iter(f"{SVG}text")] == [str(t.label)]
        assert any(p.get("marker-end") for p in g.iter(f"{SVG}path")), t.name


def test_main_flow_in_order_top_to_bottom_and_side_states_apart():
    root = _parse(state_diagram())
    boxes = {s: g.find(f"{SVG}rect") for s, g in _groups(root, "state").items()}
    ys = [float(boxes[s].get("y")) for s in state.MAIN_FLOW]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)
    main_x = {boxes[s].get("x") for s in state.MAIN_FLOW}
    assert len(main_x) == 1
    side = [s for s in OrderState.values if s not in state.MAIN_FLOW]
    assert sorted(side) == ["CANCELLED", "ON_HOLD", "REJECTED"]
    for s in side:
        assert boxes[s].get("x") not in main_x
        assert boxes[s].get("stroke-dasharray")


def test_current_state_is_highlighted_and_only_it():
    root = _parse(state_diagram(OrderState.SIGNED))
    current = [s for s, g in _groups(root, "state").items() if "current" in g.get("class").split()]
    assert current == [OrderState.SIGNED]
    assert _groups(root, "state")[OrderState.SIGNED].get("aria-current") == "step"
    assert "current" not in state_diagram()


def test_a_new_transition_and_a_new_state_appear(monkeypatch):
    extra = Transition(
        "escalate",
        "Escalate to board",
        (OrderState.PENDING_APPROVAL, OrderState.QUOTING),
        "ESCALATED",
        frozenset({Role.APPROVER}),
    )
    jump = Transition("fast_track", "Fast track", (OrderState.QUOTING,), OrderState.SIGNED, frozenset({Role.ADMIN}))
    monkeypatch.setattr(state, "TRANSITIONS", (*state.TRANSITIONS, extra, jump))
    root = _parse(state_diagram("ESCALATED"))
    drawn = _groups(root, "transition")
    assert {"escalate", "fast_track"} <= set(drawn)
    assert [x.text for x in drawn["escalate"].iter(f"{SVG}text")] == ["Escalate to board"]
    assert [x.text for x in drawn["fast_track"].iter(f"{SVG}text")] == ["Fast track"]
    assert "ESCALATED" in _groups(root, "state")
    assert "current" in _groups(root, "state")["ESCALATED"].get("class")


def test_text_is_escaped(monkeypatch):
    evil = Transition("evil", "<script>alert(1)</script>", (OrderState.QUOTING,), "X<&>", frozenset({Role.ADMIN}))
    monkeypatch.setattr(state, "TRANSITIONS", (*state.TRANSITIONS, evil))
    svg = state_diagram()
    assert "<script>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    _parse(svg)


def test_labels_follow_the_active_language():
    with translation.override("zh-hans"):
        svg = state_diagram()
    root = _parse(svg)
    with translation.override("zh-hans"):
        expected = str(OrderState.SETTLED.label)
    assert [t.text for t in _groups(root, "state")["SETTLED"].iter(f"{SVG}text")] == [expected]
    assert re.search(r'viewBox="0 0 \d+ \d+"', svg)
