"""Appending audit entries without a lock and sealing them into the chain afterwards (decision 0016):
one INSERT per entry, seq and hashes given in order by `seal` under the chain head's lock, who seals
(the relay, the periodic job, `eoms audit seal`, verification and checkpoints), and two sealers at
once on real connections."""

import io
import logging
import threading
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.test.utils import CaptureQueriesContext

from eoms.core import audit, periodic, relay
from eoms.core.audit import ChainProblem, verify_chain, write_checkpoint
from eoms.core.models import AuditChainHead, AuditEntry
from eoms.testing.concurrency import race

POSTGRESQL = connection.vendor == "postgresql"


def _ping(name, actor=None, **extra) -> AuditEntry:
    with transaction.atomic():
        return audit.record(actor=actor, action="test.pinged", object_type="test.thing", object_id=name, **extra)


def _head() -> tuple[int, str]:
    head = AuditChainHead.objects.get()
    return head.seq, head.hash


def test_record_is_one_insert_of_an_unsealed_entry(world):
    head = _head()
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        entry = audit.record(
            actor=world.pm, action="test.pinged", object_type="test.thing", object_id=7, changes={"n": Decimal("1.50")}
        )
    assert [q["sql"].split(None, 1)[0] for q in ctx.captured_queries] == ["INSERT"]
    assert (entry.seq, entry.prev_hash, entry.hash) == (None, "", "")
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.seq, stored.prev_hash, stored.hash, stored.object_id, stored.changes) == (
        None,
        "",
        "",
        "7",
        {"n": "1.50"},
    )
    assert _head() == head  # the head is neither read nor moved


def test_seal_numbers_entries_in_id_order_links_them_and_moves_the_head(db):
    entries = [_ping(f"e{i}") for i in range(5)]
    assert audit.seal() == 5
    sealed = list(AuditEntry.objects.order_by("seq"))
    assert [e.pk for e in sealed] == [e.pk for e in entries]
    assert [e.seq for e in sealed] == [1, 2, 3, 4, 5]
    assert sealed[0].prev_hash == audit.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(sealed, sealed[1:], strict=False))
    assert all(e.hash == audit._hash(e) for e in sealed)
    assert _head() == (5, sealed[-1].hash)
    assert audit.seal() == 0
    later = _ping("later")
    assert audit.seal() == 1
    assert AuditEntry.objects.get(pk=later.pk).prev_hash == sealed[-1].hash
    assert verify_chain() is None


def test_seal_goes_in_batches_until_none_is_left(db):
    for i in range(7):
        _ping(f"e{i}")
    with CaptureQueriesContext(connection) as ctx:
        assert audit.seal(limit=3) == 7
    heads = [q for q in ctx.captured_queries if "core_auditchainhead" in q["sql"] and q["sql"].startswith("SELECT")]
    assert len(heads) == 3  # 3 + 3 + 1, each batch under the head's lock
    assert list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 8))
    assert verify_chain() is None


def test_with_nothing_to_seal_a_seal_is_one_read_and_takes_no_lock(db):
    _ping("e")
    audit.seal()
    with CaptureQueriesContext(connection) as ctx:
        assert audit.seal() == 0
    assert len(ctx.captured_queries) == 1
    assert ctx.captured_queries[0]["sql"].startswith("SELECT")
    assert "core_auditchainhead" not in ctx.captured_queries[0]["sql"]


def test_the_hash_covers_what_the_database_holds(world):
    """The entry is hashed as read back at sealing: an IPv6 address, decimals and time zones in the
    database's own form, exactly what verification reads."""
    from eoms.core.context import RequestInfo, reset_request_info, set_request_info

    token = set_request_info(RequestInfo(ip="2001:0DB8::0001", request_id="req-seal-0001"))
    try:
        entry = _ping("v6", actor=world.pm, changes={"amount": Decimal("12.30"), "when": world.pm.date_joined})
    finally:
        reset_request_info(token)
    audit.seal()
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert stored.ip == "2001:db8::1"
    assert stored.hash == audit._hash(stored)
    assert verify_chain() is None


def test_verify_seals_first_and_leaves_out_an_entry_committed_after_its_seal(db, monkeypatch):
    _ping("sealed by verify")
    assert verify_chain() is None
    assert AuditEntry.objects.get(object_id="sealed by verify").seq == 1
    # An entry committed after the seal's snapshot: verification finds the chain intact without it.
    monkeypatch.setattr(audit, "seal", lambda limit=audit.SEAL_BATCH: 0)
    _ping("committed after")
    assert verify_chain() is None
    assert AuditEntry.objects.get(object_id="committed after").seq is None
    out = io.StringIO()
    call_command("audit", "verify", stdout=out)
    assert out.getvalue() == "audit chain intact: 1 entries (1 written since, not sealed yet)\n"


def test_a_checkpoint_seals_first(db, settings):
    _ping("a")
    _ping("b")
    assert write_checkpoint() == {"seq": 2, "written": True}
    assert not AuditEntry.objects.filter(seq__isnull=True).exists()


def test_the_audit_seal_command(db):
    _ping("a")
    _ping("b")
    out = io.StringIO()
    call_command("audit", "seal", stdout=out)
    assert out.getvalue() == "sealed 2 audit entries; the chain ends at #2\n"
    out = io.StringIO()
    call_command("audit", "seal", stdout=out)
    assert out.getvalue() == "sealed 0 audit entries; the chain ends at #2\n"


def test_the_periodic_job_seals(db):
    assert "core.audit_seal" in {job.name for job in periodic.jobs()}
    _ping("a")
    assert periodic.run_all()["core.audit_seal"] == 1
    assert AuditEntry.objects.get(object_id="a").seq == 1


def test_the_relay_seals_after_its_pass(db):
    _ping("a")
    out = io.StringIO()
    call_command("relay", "--once", stdout=out)
    assert out.getvalue() == "delivered 0 message(s); sealed 1 audit entries\n"
    assert AuditEntry.objects.get(object_id="a").seq == 1


def test_the_relay_thread_seals_after_each_pass(db, monkeypatch):
    sealed = []
    monkeypatch.setattr(relay, "drain", lambda transport, stop: 0)
    monkeypatch.setattr(relay.periodic, "run_due", lambda: {})
    monkeypatch.setattr(relay, "seal_audit", lambda: sealed.append(1) or 0)
    monkeypatch.setattr(relay, "close_old_connections", lambda: None)  # the test's connection stays
    thread = relay.RelayThread(interval=0.01)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(sealed) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        thread.stop()
        thread.join(10)
    assert len(sealed) >= 3


def test_a_rewound_head_stops_sealing_but_not_verification(db, audit_rows_editable, caplog):
    """Whoever rewinds the head (without the last entry) makes the next seal collide with it: the seal
    fails and is logged, the relay goes on, and verification names the problem."""
    for name in "abc":
        _ping(name)
    audit.seal()
    AuditChainHead.objects.update(seq=2)
    _ping("d")
    with caplog.at_level(logging.ERROR):
        assert relay.seal_audit() == 0
        assert verify_chain() == ChainProblem(4, "chain ends at #3 but its head says #2")
    assert "sealing the audit chain failed" in caplog.text
    assert "audit entries not sealed before verifying: IntegrityError" in caplog.text
    assert AuditEntry.objects.get(object_id="d").seq is None


def test_an_entry_deleted_before_its_seal_rolls_the_round_back(db, audit_rows_editable, monkeypatch):
    """The seal's UPDATE must change every row it read: one gone meanwhile (only a writer bypassing
    the trigger can) makes the round roll back rather than leave a gap."""
    kept, gone = _ping("kept"), _ping("gone")
    hash_ = audit._hash

    def delete_then_hash(entry):
        AuditEntry.objects.filter(pk=gone.pk).delete()
        return hash_(entry)

    monkeypatch.setattr(audit, "_hash", delete_then_hash)
    with pytest.raises(audit.SealFailed, match="1 of 2 audit entries were not unsealed any more"):
        audit.seal()
    assert AuditEntry.objects.get(pk=kept.pk).seq is None
    assert _head() == (0, audit.GENESIS)


# ------------------------------------------------------------------------ the PostgreSQL trigger


pg_only = pytest.mark.skipif(not POSTGRESQL, reason="the trigger is PostgreSQL's")


def _refused(sql: str, params: list, match: str) -> None:
    with pytest.raises(DatabaseError, match=match), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.asvs("16.4.2")
@pg_only
def test_on_postgresql_the_trigger_lets_only_sealing_through(db):
    first, second = _ping("first"), _ping("second")
    audit.seal()
    fresh = _ping("fresh")
    table = AuditEntry._meta.db_table
    not_sealed = rf"entry \(id {fresh.pk}, not sealed yet\) refused"
    # An unsealed entry can be neither edited nor deleted, nor sealed with a changed content.
    _refused(f"UPDATE {table} SET object_repr = 'edited' WHERE id = %s", [fresh.pk], f"UPDATE of {not_sealed}")  # noqa: S608
    _refused(f"DELETE FROM {table} WHERE id = %s", [fresh.pk], f"DELETE of {not_sealed}")  # noqa: S608
    for column, value in (("action", "orders.approve"), ("changes", '{"n": 2}'), ("at", "2000-01-01T00:00:00Z")):
        _refused(
            f"UPDATE {table} SET seq = 99, prev_hash = 'x', hash = 'y', {column} = %s WHERE id = %s",  # noqa: S608
            [value, fresh.pk],
            f"UPDATE of {not_sealed}",
        )
    # A sealed entry cannot be sealed again, nor unsealed.
    _refused(f"UPDATE {table} SET seq = 99, hash = 'y' WHERE id = %s", [first.pk], "UPDATE of entry #1 refused")  # noqa: S608
    _refused(f"UPDATE {table} SET seq = NULL WHERE id = %s", [second.pk], "UPDATE of entry #2 refused")  # noqa: S608
    # Sealing goes through, and the chain is intact.
    assert audit.seal() == 1
    assert AuditEntry.objects.get(pk=fresh.pk).seq == 3
    assert verify_chain() is None


# ------------------------------------------------------------------------ sealers at once


SERVER = connection.vendor in ("postgresql", "mysql")
server_only = pytest.mark.skipif(not SERVER, reason="needs a server database (PostgreSQL or MariaDB)")


def _waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not POSTGRESQL, reason="watches pg_stat_activity")
def test_a_second_sealer_waits_for_the_first_and_seals_only_what_is_left(monkeypatch):
    """Sealer A holds the head's lock (stopped while hashing its batch); sealer B waits on it; an entry
    committed meanwhile is not in A's batch. When A commits, B seals exactly that entry, after A's."""
    for i in range(3):
        _ping(f"first {i}")
    in_batch, go_on = threading.Event(), threading.Event()
    hash_ = audit._hash
    holder = []

    def slow_hash(entry):
        if threading.current_thread() is holder[0] and not in_batch.is_set():
            in_batch.set()
            assert go_on.wait(30)
        return hash_(entry)

    monkeypatch.setattr(audit, "_hash", slow_hash)
    results = {}

    def sealer(name):
        try:
            results[name] = audit.seal()
        except BaseException as exc:  # asserted on below
            results[name] = exc
        finally:
            connection.close()

    a = threading.Thread(target=sealer, args=("a",))
    holder.append(a)
    a.start()
    try:
        assert in_batch.wait(30)
        late = _ping("committed while A seals")  # not in A's batch
        b = threading.Thread(target=sealer, args=("b",))
        b.start()
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _waiting_on_a_lock() == 1  # B waits for the head A holds
    finally:
        go_on.set()
        a.join(30)
    b.join(30)
    close_old_connections()
    assert results == {"a": 3, "b": 1}
    assert AuditEntry.objects.get(pk=late.pk).seq == 4
    assert verify_chain() is None


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@server_only
def test_writers_and_sealers_at_once_leave_a_gapless_intact_chain():
    """Eight threads: five write 40 entries each, one transaction per entry, while three seal over and
    over. Every committed entry is sealed exactly once, seq is gapless, the chain verifies."""
    writers, each = 5, 40
    writing = threading.Event()
    writing.set()
    done = [0]
    lock = threading.Lock()

    def work(i):
        if i < writers:
            for k in range(each):
                _ping(f"w{i}-{k}")
            with lock:
                done[0] += 1
                if done[0] == writers:
                    writing.clear()
            return "wrote"
        sealed = 0
        while writing.is_set():
            sealed += audit.seal(limit=7)
        return sealed

    results = race(writers + 3, work)
    assert results[:writers] == ["wrote"] * writers, results
    assert all(isinstance(r, int) for r in results[writers:]), results
    left = audit.seal()
    assert sum(results[writers:]) + left == writers * each
    seqs = list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, writers * each + 1))
    assert _head()[0] == writers * each
    assert verify_chain() is None
