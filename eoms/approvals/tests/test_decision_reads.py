"""What a decision reads, and that reading it in fewer statements answers what the separate reads
answered: the next approvers with their read-only flag and deputies (accounts.selectors.
approvers_with_deputies, against read_only_users / resolve_deputy / deputy_of), and the task a
decision starts from (selectors.decision_task)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from eoms.accounts.models import Delegation
from eoms.accounts.roles import Role
from eoms.accounts.selectors import approvers_with_deputies, read_only_users, resolve_deputy, users_with_role
from eoms.approvals.engine import _deputy, deputy_of
from eoms.approvals.selectors import decision_task
from eoms.approvals.services import decide_task

from .scenarios import approval, flow, pending, publish, submit, tasks, user


@pytest.fixture
def people(world):
    """Users with every kind of delegation the data can hold, refused or not when set: none, one
    link, a chain, a cycle (old data), to an auditor, to an inactive user, to the initiator, revoked,
    not yet begun, two in force at once (old data), to oneself (old data); and an auditor and an
    inactive user who delegate."""
    today = timezone.localdate()
    p = {name: user(name, Role.APPROVER) for name in "abcdefghiklmnopsuv"}
    p["q"] = user("q", Role.AUDITOR)
    p["j"] = user("j", Role.APPROVER)
    p["j"].is_active = False
    p["j"].save(update_fields=["is_active"])
    p["u"].groups.add(*p["q"].groups.all())  # u is an approver and an auditor
    p["v"].is_active = False
    p["v"].save(update_fields=["is_active"])

    def delegate(who, deputy, *, start=0, end=0, revoked=False):
        Delegation.objects.create(
            user=p[who] if isinstance(who, str) else who,
            deputy=p[deputy] if isinstance(deputy, str) else deputy,
            starts_on=today + timedelta(days=start),
            ends_on=today + timedelta(days=end),
            revoked_at=timezone.now() if revoked else None,
            created_by=world.admin,
        )

    delegate("a", "b")
    delegate("c", "d")
    delegate("d", "e")
    delegate("f", "g")
    delegate("g", "f")
    delegate("h", "q")
    delegate("i", "j")
    delegate("k", world.pm)
    delegate("l", "b", revoked=True)
    delegate("m", "b", start=1, end=3)
    delegate("n", "o", start=-2, end=2)
    delegate("n", "p", start=-1, end=2)
    delegate("s", "s")
    delegate("u", "b")
    delegate("v", "b")
    delegate(world.pm, "e")
    return p


def _in_force(person, on):
    """The delegation resolve_deputy follows from `person`, read as it reads it."""
    return (
        Delegation.objects.filter(
            user=person, revoked_at__isnull=True, starts_on__lte=on, ends_on__gte=on, deputy__is_active=True
        )
        .select_related("deputy")
        .first()
    )


def test_approvers_with_deputies_answers_what_the_separate_reads_answer(world, people):
    today = timezone.localdate()
    everyone = [*people.values(), world.pm, world.auditor, world.approver]
    read = {a.user.pk: a for a in approvers_with_deputies(user_ids=[u.pk for u in everyone], on=today)}
    assert set(read) == {u.pk for u in everyone if u.is_active}
    read_all = {
        a.user.pk: a for a in approvers_with_deputies(user_ids=[u.pk for u in everyone], on=today, active_only=False)
    }
    assert set(read_all) == {u.pk for u in everyone}
    read_only = read_only_users([u.pk for u in everyone])
    for person in everyone:
        approver = read_all[person.pk]
        assert approver.user == person
        assert approver.user.username == person.username
        assert approver.read_only == (person.pk in read_only), person.username
        first = _in_force(person, today)
        assert approver.deputy == (first.deputy if first else None), person.username
        if first is not None:
            assert approver.deputy_read_only == (first.deputy_id in read_only), person.username
            assert approver.deputy_delegates == (_in_force(first.deputy, today) is not None), person.username
        for initiator in (None, world.pm, people["b"], people["e"], people["d"]):
            assert _deputy(person, approver, initiator=initiator, on=today) == deputy_of(
                person, initiator=initiator, on=today
            ), (person.username, initiator)
    assert read_all[people["n"].pk].deputy == people["p"]  # the later of two in force, as resolve_deputy
    assert read_all[people["c"].pk].deputy == people["d"] and read_all[people["c"].pk].deputy_delegates
    assert resolve_deputy(people["c"], on=today)[0] == people["e"]
    assert _deputy(people["c"], read_all[people["c"].pk], initiator=None, on=today) == people["e"]


def test_approvers_of_a_role_are_its_active_members_by_username(world, people):
    today = timezone.localdate()
    found = approvers_with_deputies(role=Role.APPROVER, on=today)
    assert [a.user for a in found] == list(users_with_role(Role.APPROVER).order_by("username"))
    assert "j" not in [a.user.username for a in found]
    assert [a.user.username for a in found if a.read_only] == ["u"]
    assert approvers_with_deputies(role="nobody-has-this", on=today) == []
    assert approvers_with_deputies(user_ids=[], on=today) == []


def test_a_deputy_who_is_an_auditor_is_skipped_and_a_chain_is_followed_to_its_end(world, people):
    publish(world, flow(approval("review", "users", users=[people["h"], people["c"], people["a"], people["u"]])))
    _order, inst = submit(world)
    # h's deputy is an auditor: h keeps the task; c→d→e ends at e; a's deputy b; u is an auditor.
    assert tasks(inst) == [
        ("review", "h", "pending", "approver", None),
        ("review", "e", "pending", "approver", "c"),
        ("review", "b", "pending", "approver", "a"),
    ]


def _three_named(world, people):
    publish(
        world,
        flow(
            approval("one", "users", users=[people["a"]]),
            approval("two", "users", users=[people["b"]]),
            approval("three", "users", users=[people["c"]]),
        ),
    )
    return submit(world)


def test_a_decision_reads_its_task_once_and_the_next_approvers_once(world, people):
    _order, inst = _three_named(world, people)
    task = pending(inst, "b")  # a delegated to b
    with CaptureQueriesContext(connection) as captured:
        decide_task(actor=people["b"], task_id=task.id, decision="approve")
    reads = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    reads = [sql for sql in reads if "core_auditchainhead" not in sql]  # the audit chain's own
    # The instance lock (server databases; SQLite's transaction holds the write lock), the task
    # with everything it refers to, the next node's approver with read-only flag and deputy.
    assert len(reads) == (3 if connection.features.has_select_for_update else 2), reads
    assert tasks(inst)[-1] == ("two", "b", "pending", "approver", None)


def test_a_decision_task_carries_its_instance_its_peers_and_the_actors_read_only_flag(world, people):
    publish(world, flow(approval("board", "users", users=[people["b"], people["e"]], mode="all")))
    _order, inst = submit(world)
    task = pending(inst, "b")
    with CaptureQueriesContext(connection) as captured:
        read = decision_task(people["b"], task.id)
        assert (read.peers, read.actor_read_only) == (1, False)
        assert read.instance == inst and read.step.instance is read.instance
        assert (read.instance.definition.key, read.instance.initiator) == ("flow", world.pm)
        assert read.on_behalf_of is None and read.step.node_id == "board"
    assert len(captured.captured_queries) == (2 if connection.features.has_select_for_update else 1)
    assert decision_task(people["e"], task.id) is None  # not theirs
    assert decision_task(people["b"], "not-a-uuid") is None
    assert decision_task(None, task.id) is None
    people["b"].groups.add(*people["q"].groups.all())
    assert decision_task(people["b"], task.id).actor_read_only is True


def test_testing_flow_conditions_reads_no_choices_and_describing_the_one_that_holds_does(world):
    from eoms.approvals.services import select_definition
    from eoms.approvals.subjects import get_adapter

    from .scenarios import rule, when

    hot = publish(
        world,
        flow(approval("hot", "role")),
        key="hot",
        is_default=False,
        priority=1,
        applies_when=when(
            [rule("project_type", "eq", world.project.project_type.code)], [rule("title", "contains", "HOT")]
        ),
    )
    cold = world.order("QUOTING", title="平常")
    facts = get_adapter("orders.order").load(cold.id).facts
    facts["project_type"] = "no-such-type"
    select_definition("orders.order", facts)  # the fields' types are asked of the adapter once per process
    with CaptureQueriesContext(connection) as captured:
        chosen, why = select_definition("orders.order", facts)
    assert (chosen.key, why) == ("simple", "default flow")
    assert not [q for q in captured.captured_queries if "masterdata_projecttype" in q["sql"]]
    facts["title"] = "a HOT one"
    with CaptureQueriesContext(connection) as captured:
        assert select_definition("orders.order", facts) == (
            hot,
            f"(project type = {world.project.project_type}) or (title ∋ HOT)",
        )
    assert [q for q in captured.captured_queries if "masterdata_projecttype" in q["sql"]]
