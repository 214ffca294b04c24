"""Cheap checks of the benchmarks' own logic (no database, no server): the transition pair they cycle
is still a cycle of the state machine, the figures are computed right, and the pgbench scripts run
the statements the issue names. The benchmarks themselves run in CI with --quick."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as c  # noqa: E402
import transition  # noqa: E402

from eoms.accounts.roles import Role  # noqa: E402
from eoms.orders.state import BY_NAME  # noqa: E402


@pytest.mark.parametrize(
    ("source", "name", "target"), [("IN_EXECUTION", "hold", "ON_HOLD"), ("ON_HOLD", "resume", "IN_EXECUTION")]
)
def test_hold_and_resume_cycle_for_the_project_manager_without_guards(source, name, target):
    transition_ = BY_NAME[name]
    assert c.CYCLE[source] == (name, target)
    assert source in transition_.sources
    assert transition_.target == target
    assert transition_.guards == ()
    assert not transition_.system
    assert Role.PROJECT_MANAGER in transition_.allowed_roles(source)


def test_transition_body_sends_the_comment_hold_needs_and_the_version_read():
    assert BY_NAME["hold"].comment_required
    assert c.transition_body("IN_EXECUTION", 7) == ("hold", {"comment": c.HOLD_COMMENT, "version": 7})
    assert c.transition_body("ON_HOLD", 8) == ("resume", {"version": 8})
    assert c.transition_body("ON_HOLD", None) == ("resume", {})


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert c.percentile(values, 50) == 50.0
    assert c.percentile(values, 99) == 99.0
    assert c.percentile(values, 100) == 100.0
    assert c.percentile([3.0], 99) == 3.0
    assert c.percentile([], 50) is None


def test_median_of_runs_takes_each_number_and_keeps_the_runs():
    runs = [
        {"tps": 1.0, "clients": 4, "cpu": {"a": 1.0}, "errors": {"x": 1}},
        {"tps": 3.0, "clients": 4, "cpu": {"a": 5.0}, "errors": {}},
        {"tps": 2.0, "clients": 4, "cpu": {"a": 2.0}, "errors": {}},
    ]
    out = c.median_of(runs)
    assert out["tps"] == 2.0
    assert out["clients"] == 4
    assert out["cpu"] == {"a": 2.0}
    assert out["errors"] == {"x": 1}  # not numbers: the first run's
    assert out["runs"] == runs


def _statements(script: str) -> list[str]:
    return [
        line.split()[0] + (" " + line.split()[2] if line.startswith("INSERT") else "")
        for line in script.splitlines()
        if line and not line.startswith("\\")
    ]


def test_pgbench_script_runs_the_issues_statements_with_an_unsealed_audit_entry():
    literals = {
        "changes": '{"state": ["IN_EXECUTION", "ON_HOLD"]}',
        "payload": '{"n": "O\'Brien"}',
        "object_repr": "ORD-1",
    }
    plain = transition.pgbench_script(literals)
    assert _statements(plain) == [
        "BEGIN;",
        "SELECT",
        "UPDATE",
        "INSERT pgb_history",
        "INSERT pgb_audit",
        "INSERT pgb_outbox",
        "COMMIT;",
    ]
    assert "FOR UPDATE \\gset" in plain.splitlines()[2]
    assert "version = :from_version::int" in plain
    assert "'{\"n\": \"O''Brien\"}'::jsonb" in plain  # literals are quoted for SQL
    # As eoms.core.audit.record appends it (decision 0016): no seq, no hashes, no chain head.
    (audit,) = [line for line in plain.splitlines() if line.startswith("INSERT INTO pgb_audit")]
    assert "VALUES (NULL, now()," in audit and audit.endswith("::jsonb, '', '');")
    assert "chain_head" not in plain
