"""Prepared statements (eoms.core.rows) write and read exactly what the ORM does, on every backend."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from eoms.core.models import AuditEntry, OutboxMessage
from eoms.core.rows import Insert, Select, Update, Values
from eoms.testing.factories import UserFactory

pytestmark = pytest.mark.django_db

PAYLOAD = {"title": "道路改造工程（一期）", "amount": "1250000.00", "nested": {"list": [1, 2.5, None, True]}}


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_insert_answers_the_key_and_writes_what_create_would():
    insert = Insert(OutboxMessage)
    message_id = uuid.uuid4()
    pk = insert(message_id=message_id, event_type="test.done", aggregate_type="test", aggregate_id="a", payload=PAYLOAD)
    ours = OutboxMessage.objects.get(pk=pk)
    theirs = OutboxMessage.objects.create(
        message_id=uuid.uuid4(), event_type="test.done", aggregate_type="test", aggregate_id="a", payload=PAYLOAD
    )
    theirs.refresh_from_db()
    mine, orm = _fields(ours), _fields(theirs)
    for name in ("id", "message_id", "created_at"):
        mine.pop(name), orm.pop(name)
    assert mine == orm
    assert ours.message_id == message_id and ours.payload == PAYLOAD
    assert ours.created_at.tzinfo is not None
    assert abs(ours.created_at - timezone.now()) < timedelta(minutes=1)


def test_save_gives_the_object_its_key_and_stamps_auto_now():
    user = UserFactory()
    message = OutboxMessage(event_type="test.saved", aggregate_type="test", aggregate_id="b", actor_id=str(user.pk))
    assert message.created_at is None
    Insert(OutboxMessage).save(message)
    assert message.pk is not None and not message._state.adding and message._state.db == "default"
    assert message.created_at is not None
    message.refresh_from_db()
    assert (message.event_type, message.actor_id, message.attempts, message.sent_at) == (
        "test.saved",
        str(user.pk),
        0,
        None,
    )


def test_many_rows_in_one_statement_and_unknown_fields_refused():
    insert = Insert(OutboxMessage)
    with CaptureQueriesContext(connection) as queries:
        insert.many([{"event_type": f"test.n{i}", "aggregate_type": "t", "aggregate_id": str(i)} for i in range(5)])
    assert len(queries.captured_queries) == 1 or connection.vendor == "postgresql"
    assert sorted(
        OutboxMessage.objects.filter(event_type__startswith="test.n").values_list("aggregate_id", flat=True)
    ) == [
        "0",
        "1",
        "2",
        "3",
        "4",
    ]
    with pytest.raises(TypeError, match="OutboxMessage has no field"):
        insert(event_typo="x")


def _entry(seq: int, actor=None) -> AuditEntry:
    return AuditEntry.objects.create(
        seq=seq,
        at=timezone.now(),
        actor=actor,
        actor_repr="someone",
        ip="2001:db8::7",
        action="test.read",
        object_type="test",
        object_id="x",
        changes={"amount": "12.50", "名称": "测试"},
        prev_hash="0" * 64,
        hash="f" * 64,
    )


def test_select_reads_the_row_and_its_joined_rows_as_select_related_does():
    user = UserFactory()
    _entry(900001, actor=user)
    _entry(900002)
    get = Select(AuditEntry, where=("seq",), related=("actor",)).first
    ours = get(900001)
    theirs = AuditEntry.objects.select_related("actor").get(seq=900001)
    assert _fields(ours) == _fields(theirs)
    with CaptureQueriesContext(connection) as queries:
        assert _fields(ours.actor) == _fields(theirs.actor)
    assert queries.captured_queries == []  # the joined row is cached on the object
    alone = get(900002)
    with CaptureQueriesContext(connection) as queries:
        assert alone.actor is None  # LEFT JOIN: no actor, cached as None
    assert queries.captured_queries == []
    assert get(123) is None


def test_select_with_several_conditions_and_values_it_cannot_take():
    user = UserFactory()
    get = Select(type(user), where=("id", "is_active")).first
    assert get(user.pk, True).pk == user.pk
    assert get(str(user.pk), True).pk == user.pk
    assert get(user.pk, False) is None
    assert get("not-a-uuid", True) is None
    assert get(None, True) is None


def test_a_locking_select_locks_the_row_alone():
    user = UserFactory()
    entry = _entry(900003, actor=user)
    get = Select(AuditEntry, where=("id",), related=("actor",), lock=True).first
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert get(entry.pk).actor.pk == user.pk
    sql = [q["sql"] for q in queries.captured_queries]
    if connection.vendor == "postgresql":
        assert len(sql) == 1 and sql[0].endswith("FOR UPDATE OF t0")
    elif connection.vendor == "mysql":  # no FOR UPDATE OF: a narrow locking read, then the joined read
        assert len(sql) == 2 and sql[0].endswith("FOR UPDATE") and "JOIN" not in sql[0]
        assert "FOR UPDATE" not in sql[1]
    else:  # SQLite: the transaction's write lock covers everything
        assert len(sql) == 1 and "FOR UPDATE" not in sql[0]


def test_values_match_values_list_with_conversions_and_order():
    user = UserFactory()
    for seq in (900012, 900010, 900011):
        _entry(seq, actor=user if seq != 900011 else None)
    values = Values(AuditEntry, fields=("seq", "at", "actor", "changes", "ip"), where=("object_id",), order_by=("seq",))
    assert values("x") == list(
        AuditEntry.objects.filter(object_id="x").order_by("seq").values_list("seq", "at", "actor", "changes", "ip")
    )
    assert [row[2] for row in values("x")] == [user.pk, None, user.pk]
    assert values("nothing") == []


def test_update_is_a_compare_and_set():
    pk = Insert(OutboxMessage)(event_type="test.cas", aggregate_type="t", aggregate_id="c")
    later = timezone.now() + timedelta(hours=1)
    retry = Update(
        OutboxMessage, set=("last_error", "next_attempt_at"), where=("id", "attempts"), increment=("attempts",)
    )
    assert retry("boom", later, pk, 0) == 1
    assert retry("again", later, pk, 0) == 0  # the attempts we read are gone: nothing changes
    message = OutboxMessage.objects.get(pk=pk)
    assert (message.last_error, message.next_attempt_at, message.attempts) == ("boom", later, 1)
    assert retry("x", later, "not-a-number", 1) == 0


def test_decimal_and_uuid_values_round_trip():
    """A foreign key given as an object or its key, and a Decimal in JSON, are taken as the ORM takes them."""
    user = UserFactory()
    pk = Insert(AuditEntry)(
        seq=900020,
        at=timezone.now(),
        actor=user,
        action="test.money",
        object_type="test",
        object_id="m",
        changes={"amount": str(Decimal("1250000.10"))},
        prev_hash="0" * 64,
        hash="e" * 64,
    )
    entry = AuditEntry.objects.get(pk=pk)
    assert (entry.actor_id, entry.changes, entry.ip, entry.object_repr) == (user.pk, {"amount": "1250000.10"}, None, "")


def test_operators_lists_and_nested_joins(audit_rows_editable):
    """in (several sizes, empty), ranges, IS NULL, ordering, and a join through a join (the actor's
    org unit), each as the ORM answers it."""
    from eoms.testing.factories import OrgUnitFactory

    unit = OrgUnitFactory()
    users = [UserFactory(org_unit=unit), UserFactory(org_unit=None), UserFactory(org_unit=unit)]
    entries = [_entry(900030 + i, actor=u) for i, u in enumerate(users)]
    select = Select(
        AuditEntry,
        where=("seq__in", "seq__gte", "ip__isnull"),
        related=("actor", "actor__org_unit"),
        order_by=("seq",),
    )
    found = select.all(
        [e.seq for e in entries],
        900031,
    )
    assert found == []  # every entry has an IP: IS NULL matches none
    AuditEntry.objects.filter(seq__in=[900031, 900032]).update(ip=None)
    found = select.all([e.seq for e in entries], 900031)
    assert [e.seq for e in found] == [900031, 900032]
    with CaptureQueriesContext(connection) as queries:
        assert [(e.actor.pk, e.actor.org_unit) for e in found] == [(users[1].pk, None), (users[2].pk, unit)]
    assert queries.captured_queries == []
    assert select.all([900032], 0) == found[1:]
    assert select.all([], 0) == []  # an empty list matches nothing, without a query
    values = Values(AuditEntry, fields=("seq",), where=("seq__in", "seq__lt"), order_by=("seq",))
    assert values([900030, 900031, 900032, 1], 900032) == [(900030,), (900031,)]
    with pytest.raises(ValueError, match="no operator"):
        Values(AuditEntry, fields=("seq",), where=("seq__contains",))("x")
