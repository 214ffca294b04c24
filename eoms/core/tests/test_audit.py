"""The audit chain: entries appended unsealed and sealed afterwards, intact after real activity, and
every kind of tampering is found at its entry."""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import transaction

from eoms.core import audit
from eoms.core.audit import ChainProblem, verify_chain
from eoms.core.context import RequestInfo, reset_request_info, set_request_info
from eoms.core.events import DomainEvent, emit
from eoms.core.models import AuditChainHead, AuditEntry, OutboxMessage


@dataclass(frozen=True, kw_only=True)
class Pinged(DomainEvent):
    event_type = "test.pinged"
    aggregate_type = "test.thing"
    id: str


@pytest.fixture
def chain(world, audit_rows_editable):
    """Seven entries of real activity on a chain that starts empty: an order quoted, given a file,
    edited and cancelled, and a second order quoted."""
    AuditEntry.objects.all().delete()  # the world's own set-up (its approval flow) is not part of it
    AuditChainHead.objects.update(seq=0, hash="0" * 64)
    first = world.order("QUOTING")
    world.attach(first)
    world.update(first, title="道路改造工程施工（一期）")
    world.walk(first, "cancel")
    world.order("QUOTING")
    assert AuditEntry.objects.count() == 7
    assert verify_chain() is None
    return list(AuditEntry.objects.order_by("seq"))


def test_activity_leaves_an_intact_gapless_chain(chain):
    assert [e.seq for e in chain] == list(range(1, 8))
    assert chain[0].prev_hash == "0" * 64
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(chain, chain[1:], strict=False))
    head = AuditChainHead.objects.get()
    assert (head.seq, head.hash) == (7, chain[-1].hash)
    assert [e.action for e in chain] == [
        "orders.order_created",
        "orders.start_quotation",
        "orders.attachment_added",
        "orders.order_updated",
        "orders.cancel",
        "orders.order_created",
        "orders.start_quotation",
    ]


def test_a_rolled_back_write_leaves_no_gap(chain):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        emit(Pinged(id="lost"), actor=None)
        1 / 0  # noqa: B018
    with transaction.atomic():
        emit(Pinged(id="kept"), actor=None)
    assert audit.seal() == 1
    assert list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 9))
    assert AuditEntry.objects.get(seq=8).object_id == "kept"
    assert verify_chain() is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("changes", {"state": ["QUOTING", "SETTLED"]}),
        ("action", "orders.approve"),
        ("object_repr", "ORD-2026-999999"),
        ("request_id", "forged-request-id"),
        ("ip", "203.0.113.66"),
    ],
)
def test_edited_entry_is_found(chain, field, value):
    AuditEntry.objects.filter(seq=3).update(**{field: value})
    assert verify_chain() == ChainProblem(3, "content does not match its hash (edited)")


def test_edited_actor_is_found(chain, world):
    assert chain[4].actor_id == world.pm.pk
    AuditEntry.objects.filter(seq=5).update(actor=world.admin, actor_repr=world.admin.username)
    assert verify_chain() == ChainProblem(5, "content does not match its hash (edited)")


def test_edited_time_is_found(chain):
    AuditEntry.objects.filter(seq=2).update(at=chain[1].at - timedelta(microseconds=1))
    assert verify_chain() == ChainProblem(2, "content does not match its hash (edited)")


def test_rehashed_edit_is_found_at_the_next_entry(chain):
    """Whoever edits a row and recomputes its hash with the key still breaks the link to the next."""
    entry = AuditEntry.objects.get(seq=3)
    entry.changes = {"state": ["QUOTING", "SETTLED"]}
    entry.hash = audit._hash(entry)
    AuditEntry.objects.filter(seq=3).update(changes=entry.changes, hash=entry.hash)
    assert verify_chain() == ChainProblem(4, "does not follow the previous entry (reordered or inserted)")


def test_deleted_middle_entry_is_found(chain):
    AuditEntry.objects.filter(seq=4).delete()
    assert verify_chain() == ChainProblem(4, "missing (next present is #5)")


def test_deleted_first_entry_is_found(chain):
    AuditEntry.objects.filter(seq=1).delete()
    assert verify_chain() == ChainProblem(1, "missing (next present is #2)")


def test_swapped_entries_are_found(chain):
    # seq is unique: move #3 aside, put #4 in its place, then #3 in #4's.
    AuditEntry.objects.filter(seq=3).update(seq=-3)
    AuditEntry.objects.filter(seq=4).update(seq=3)
    AuditEntry.objects.filter(seq=-3).update(seq=4)
    assert verify_chain() == ChainProblem(3, "does not follow the previous entry (reordered or inserted)")


def test_inserted_forged_entry_is_found(chain, world):
    # Make room at #4 by shifting the later entries up (highest first, seq is unique).
    for seq in range(7, 3, -1):
        AuditEntry.objects.filter(seq=seq).update(seq=seq + 1)
    AuditChainHead.objects.update(seq=8)
    forged = AuditEntry(
        seq=4,
        at=chain[3].at,
        actor=world.admin,
        actor_repr=world.admin.username,
        action="orders.approve",
        object_type="orders.order",
        object_id=chain[3].object_id,
        changes={"state": ["PENDING_APPROVAL", "APPROVED"]},
        prev_hash=chain[2].hash,
    )
    forged.hash = hashlib.sha256(b"no key").hexdigest()
    forged.save(force_insert=True)
    assert verify_chain() == ChainProblem(4, "content does not match its hash (edited)")


def test_appended_forged_entry_is_found(chain, world):
    forged = AuditEntry(
        seq=8,
        at=chain[-1].at,
        actor=world.admin,
        actor_repr="admin1",
        action="orders.cancel",
        object_type="orders.order",
        object_id=chain[-1].object_id,
        prev_hash=chain[-1].hash,
        hash=hashlib.sha256(b"guess").hexdigest(),
    )
    forged.save(force_insert=True)
    AuditChainHead.objects.update(seq=8, hash=forged.hash)
    assert verify_chain() == ChainProblem(8, "content does not match its hash (edited)")


def test_truncated_tail_is_found_by_the_head(chain):
    AuditEntry.objects.filter(seq__gte=6).delete()
    assert verify_chain() == ChainProblem(6, "chain ends at #5 but its head says #7")


def test_truncated_tail_with_a_rewound_head_seq_is_found_by_its_hash(chain):
    AuditEntry.objects.filter(seq=7).delete()
    AuditChainHead.objects.update(seq=6)
    assert verify_chain() == ChainProblem(6, "last entry does not match the chain head")


def test_emptied_chain_is_found_by_the_head(chain):
    AuditEntry.objects.all().delete()
    assert verify_chain() == ChainProblem(1, "chain ends at #0 but its head says #7")


def test_verify_walks_in_batches(chain):
    assert verify_chain(batch=2) is None
    AuditEntry.objects.filter(seq=6).update(action="orders.cancel")
    assert verify_chain(batch=2) == ChainProblem(6, "content does not match its hash (edited)")


def test_entry_records_who_and_from_where(world):
    token = set_request_info(RequestInfo(ip="198.51.100.7", request_id="req-12345678", user_agent="pytest"))
    try:
        with transaction.atomic():
            emit(Pinged(id="a"), actor=world.pm, object_repr="a thing", changes={"n": 1})
            emit(Pinged(id="b"), actor=None)
    finally:
        reset_request_info(token)
    first, second = AuditEntry.objects.filter(object_type="test.thing").order_by("id")
    assert (first.actor_id, first.actor_repr, first.ip, first.request_id) == (
        world.pm.pk,
        "pm1",
        "198.51.100.7",
        "req-12345678",
    )
    assert (first.action, first.object_type, first.object_id, first.object_repr, first.changes) == (
        "test.pinged",
        "test.thing",
        "a",
        "a thing",
        {"n": 1},
    )
    assert (second.actor_id, second.actor_repr) == (None, "system")
    message = OutboxMessage.objects.get(aggregate_id="a")
    assert (message.request_id, message.actor_id, message.payload) == ("req-12345678", str(world.pm.pk), {"id": "a"})
    assert OutboxMessage.objects.get(aggregate_id="b").actor_id == ""
    assert verify_chain() is None


@pytest.mark.parametrize(
    ("spelling", "stored"),
    [
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("0:0:0:0:0:FFFF:0102:0304", "::ffff:1.2.3.4"),
        ("::1.2.3.4", None),
        ("198.51.100.7", "198.51.100.7"),
    ],
)
def test_ip_address_in_any_spelling_keeps_the_chain_intact(world, spelling, stored):
    """The database gives an IPv6 address back in its own spelling (compressed, lower case; PostgreSQL's
    inet has a few more); the hash must not depend on the spelling the request used."""
    token = set_request_info(RequestInfo(ip=spelling, request_id="req-ipv6-0001"))
    try:
        with transaction.atomic():
            emit(Pinged(id="v6"), actor=world.pm)
    finally:
        reset_request_info(token)
    if stored:
        assert AuditEntry.objects.get(object_id="v6").ip == stored
    assert verify_chain() is None


@pytest.mark.django_db(transaction=True)
def test_emit_outside_a_transaction_raises():
    with pytest.raises(RuntimeError, match="must run inside the transaction"):
        emit(Pinged(id="x"), actor=None)
    with pytest.raises(RuntimeError, match="must run inside the transaction"):
        audit.record(actor=None, action="test.pinged", object_type="test.thing", object_id="x")
    assert (AuditEntry.objects.count(), OutboxMessage.objects.count()) == (0, 0)
    assert AuditChainHead.objects.get().seq == 0


@pytest.mark.django_db(transaction=True)
def test_rolled_back_emit_leaves_nothing():
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        emit(Pinged(id="y"), actor=None)
        1 / 0  # noqa: B018
    assert (AuditEntry.objects.count(), OutboxMessage.objects.count()) == (0, 0)
    with transaction.atomic():
        emit(Pinged(id="z"), actor=None)
    assert list(AuditEntry.objects.values_list("seq", "object_id")) == [(None, "z")]
    assert audit.seal() == 1
    assert list(AuditEntry.objects.values_list("seq", "object_id")) == [(1, "z")]
    assert verify_chain() is None
