"""Running instances and new revisions: an instance stays on the revision it started on; an admin
moves chosen instances to the newly published revision, after a preview of where each active task
goes (it stays where its node is kept, else the instance restarts at the start of the new one)."""

import pytest

from eoms.approvals.errors import ApprovalInputInvalid, ApprovalPermissionDenied
from eoms.approvals.models import ApprovalAction, ApprovalTask
from eoms.approvals.services import (
    decide_task,
    migrate_instances,
    preview_migration,
    publish_definition,
    save_definition,
)
from eoms.orders.state import OrderState

from .scenarios import (
    actions,
    approval,
    branch,
    flow,
    mark,
    open_tasks,
    parallel,
    pending,
    publish,
    state_of,
    steps,
    submit,
    user,
)


def approve(instance, username):
    task = pending(instance, username)
    decide_task(actor=task.assignee, task_id=task.id, decision="approve")


@pytest.fixture
def revisions(world):
    """v1: first (approver1) → second (alice). Two orders run on it: one waiting at first, one at
    second. v2 (published): first, renamed, → third (bob); second is gone."""
    alice, bob = user("alice"), user("bob")
    v1 = publish(
        world,
        flow(approval("first", "users", users=[world.approver]), approval("second", "users", users=[alice])),
        key="contract",
        name="合同审批",
    )
    at_first = submit(world)
    at_second = submit(world)
    approve(at_second[1], "approver1")
    draft = save_definition(
        actor=world.admin,
        definition_id=v1.id,
        name="合同审批",
        document=flow(
            approval("first", "users", users=[world.approver], name="初审"),
            approval("third", "users", users=[bob]),
        ),
        is_default=True,
        priority=10,
    )
    # Until v2 is published, v1 stays published and new orders start on it.
    v1.refresh_from_db()
    assert (v1.status, draft.status) == ("published", "draft")
    assert submit(world)[1].definition == v1
    v2 = publish_definition(actor=world.admin, definition_id=draft.id)
    v1.refresh_from_db()
    assert v1.status == "superseded"
    return v1, v2, at_first, at_second


def test_running_instances_stay_on_their_revision_until_moved(world, revisions):
    v1, v2, (order, inst), _second = revisions
    assert inst.definition == v1
    assert submit(world)[1].definition == v2  # new submissions start on v2
    approve(inst, "approver1")
    assert open_tasks(inst) == [("second", "alice", "pending")]  # v1's second node
    approve(inst, "alice")
    assert state_of(order) == OrderState.APPROVED


def test_preview_shows_which_tasks_stay_and_which_instances_restart(world, revisions):
    v1, v2, (_o1, at_first), (_o2, at_second) = revisions
    rows = preview_migration(actor=world.admin, from_id=v1.id, to_id=v2.id)
    running = [r for r in rows if r["instance"].pk in (at_first.pk, at_second.pk)]
    assert [(r["instance"].pk, r["moves"], r["restart"]) for r in running] == [
        (at_first.pk, [{"node_id": "first", "from": "FIRST", "to": "初审", "stays": True}], False),
        (at_second.pk, [{"node_id": "second", "from": "SECOND", "to": None, "stays": False}], True),
    ]
    assert len(rows) == 3  # and the order submitted while v2 was a draft
    assert open_tasks(at_first) == [("first", "approver1", "pending")]  # the preview changed nothing


def test_migrating_keeps_tasks_on_kept_nodes_and_restarts_the_others(world, revisions):
    v1, v2, (order1, at_first), (order2, at_second) = revisions
    kept_task = pending(at_first, "approver1")
    m = mark()
    moved = migrate_instances(actor=world.admin, from_id=v1.id, to_id=v2.id, instance_ids=[at_first.id, at_second.id])
    assert moved == [
        {"instance_id": str(at_first.pk), "restart": False},
        {"instance_id": str(at_second.pk), "restart": True},
    ]
    at_first.refresh_from_db()
    at_second.refresh_from_db()
    assert (at_first.definition, at_second.definition) == (v2, v2)
    # Kept: the same task, now at the renamed node; v2's rules from here on.
    assert pending(at_first, "approver1").pk == kept_task.pk
    assert steps(at_first) == [("first", "approval", "active", 1)]
    assert ApprovalAction.objects.get(instance=at_first, kind="migrate").detail == {
        "from": "合同审批 v1",
        "to": "合同审批 v2",
        "restart": False,
    }
    # Restarted: second's task ends, v2 starts again from its first node, in a new round.
    assert steps(at_second) == [
        ("first", "approval", "approved", 1),
        ("second", "approval", "cancelled", 1),
        ("first", "approval", "active", 2),
    ]
    assert open_tasks(at_second) == [("first", "approver1", "pending")]
    assert actions(at_second)[-1] == ("migrate", "admin1", "")
    assert m.events() == [
        "approvals.approval_migrated",
        "approvals.approval_migrated",
        "approvals.task_created",
    ]
    assert m.audit() == m.events()
    approve(at_first, "approver1")
    assert open_tasks(at_first) == [("third", "bob", "pending")]
    approve(at_first, "bob")
    assert state_of(order1) == OrderState.APPROVED
    approve(at_second, "approver1")
    approve(at_second, "bob")
    assert state_of(order2) == OrderState.APPROVED


def test_instances_not_chosen_stay_on_v1_and_complete_on_its_rules(world, revisions):
    v1, v2, (_order1, at_first), (order2, at_second) = revisions
    migrate_instances(actor=world.admin, from_id=v1.id, to_id=v2.id, instance_ids=[at_first.id])
    at_second.refresh_from_db()
    assert at_second.definition == v1
    approve(at_second, "alice")
    assert state_of(order2) == OrderState.APPROVED
    assert [s[0] for s in steps(at_second)] == ["first", "second"]


def test_a_node_moved_into_a_parallel_block_restarts(world):
    alice = user("alice")
    v1 = publish(
        world,
        flow(approval("first", "users", users=[world.approver]), approval("second", "users", users=[alice])),
        key="p",
    )
    _order, inst = submit(world)
    draft = save_definition(
        actor=world.admin,
        definition_id=v1.id,
        name="p",
        document=flow(
            parallel(
                "both",
                branch("left", [approval("first", "users", users=[world.approver])]),
                branch("right", [approval("second", "users", users=[alice])]),
            )
        ),
        is_default=True,
        priority=10,
    )
    v2 = publish_definition(actor=world.admin, definition_id=draft.id)
    (row,) = preview_migration(actor=world.admin, from_id=v1.id, to_id=v2.id)
    assert (row["moves"], row["restart"]) == ([{"node_id": "first", "from": "FIRST", "to": None, "stays": False}], True)
    migrate_instances(actor=world.admin, from_id=v1.id, to_id=v2.id)
    assert open_tasks(inst) == [("first", "approver1", "pending"), ("second", "alice", "pending")]


def test_migration_refusals(world, revisions):
    v1, v2, _first, _second = revisions
    refusal = [{"field": "to", "message": "Move to the published revision of the same flow."}]
    for source, target in ((v2, v1), (v1, v1)):
        with pytest.raises(ApprovalInputInvalid) as caught:
            preview_migration(actor=world.admin, from_id=source.id, to_id=target.id)
        assert caught.value.errors == refusal
    other = publish(world, flow(approval("x", "role")), key="other")
    with pytest.raises(ApprovalInputInvalid):
        migrate_instances(actor=world.admin, from_id=v1.id, to_id=other.id)
    with pytest.raises(ApprovalPermissionDenied):
        migrate_instances(actor=world.pm, from_id=v1.id, to_id=v2.id)
    assert ApprovalTask.objects.filter(instance__definition=v2).count() == 0
