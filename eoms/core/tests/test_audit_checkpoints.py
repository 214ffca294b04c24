"""Checkpoints of the audit chain outside the database, and the PostgreSQL trigger that refuses UPDATE
and DELETE of audit rows: a tail cut off (with the head rewound to match) is found by the checkpoint."""

import io
import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from eoms.core import periodic
from eoms.core.audit import ChainProblem, read_checkpoints, seal, verify_chain, write_checkpoint
from eoms.core.models import AuditChainHead, AuditEntry
from eoms.orders.models import OrderState

T0 = datetime(2026, 6, 1, 8, 0, 0, 123456, tzinfo=UTC)
pg_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the trigger is PostgreSQL's")


def _call(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _lines(settings) -> list[dict]:
    return [json.loads(line) for line in settings.AUDIT_CHECKPOINT_FILE.read_text().splitlines()]


@pytest.mark.asvs("16.4.2")
def test_a_checkpoint_is_written_when_the_head_moved_and_only_then(world, settings):
    seal()
    head = AuditChainHead.objects.get()
    with time_machine.travel(T0, tick=False):
        assert _call("audit", "checkpoint") == (
            f"audit checkpoint #{head.seq} written to {settings.AUDIT_CHECKPOINT_FILE}\n"
        )
        assert write_checkpoint() == {"seq": head.seq, "written": False}
        assert (
            _call("audit", "checkpoint")
            == f"audit checkpoint #{head.seq} already in {settings.AUDIT_CHECKPOINT_FILE}\n"
        )
    world.order(OrderState.QUOTING)
    written = write_checkpoint()  # sealing the order's entries first
    moved = AuditChainHead.objects.get()
    assert moved.seq == head.seq + 2
    assert written == {"seq": moved.seq, "written": True}
    lines = _lines(settings)
    assert [(line["seq"], line["hash"]) for line in lines] == [(head.seq, head.hash), (moved.seq, moved.hash)]
    assert lines[0]["at"] == "2026-06-01T08:00:00.123456Z"
    assert [len(line["mac"]) for line in lines] == [64, 64]
    assert [(c.seq, c.hash) for c in read_checkpoints()] == [(head.seq, head.hash), (moved.seq, moved.hash)]
    assert verify_chain() is None
    assert _call("audit", "verify") == (
        f"audit chain intact: {moved.seq} entries; reaches the checkpoint #{moved.seq} of {lines[1]['at']}\n"
    )


def test_an_empty_chain_writes_no_checkpoint(db, settings):
    assert _call("audit", "checkpoint") == "audit chain is empty: no checkpoint\n"
    assert not settings.AUDIT_CHECKPOINT_FILE.exists()


def test_the_periodic_job_writes_the_checkpoint(world, settings):
    assert "core.audit_checkpoint" in {job.name for job in periodic.jobs()}
    seal()
    head = AuditChainHead.objects.get()
    assert periodic.run_all()["core.audit_checkpoint"] == {"seq": head.seq, "written": True}
    assert [line["seq"] for line in _lines(settings)] == [head.seq]


def test_an_unwritable_checkpoint_file_is_reported_and_stops_no_other_job(world, settings, tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.AUDIT_CHECKPOINT_FILE = blocker / "audit-checkpoints.jsonl"
    seal()
    head = AuditChainHead.objects.get()
    error = "FileExistsError: File exists"
    results = periodic.run_all()  # as `eoms tick` runs them: the jobs after this one still run
    assert results["core.audit_checkpoint"] == {"seq": head.seq, "written": False, "error": error}
    assert "approvals.timers" in results
    assert f"audit checkpoint #{head.seq} not written to {settings.AUDIT_CHECKPOINT_FILE} ({error})" in caplog.text
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit", "checkpoint", stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 1
    assert err.getvalue() == f"audit checkpoint #{head.seq} not written to {settings.AUDIT_CHECKPOINT_FILE}: {error}\n"


@pytest.mark.asvs("16.4.2")
def test_a_truncated_tail_with_a_rewound_head_is_found_by_the_checkpoint(world, audit_rows_editable):
    world.order(OrderState.QUOTING)
    seal()
    total = AuditChainHead.objects.get().seq
    with time_machine.travel(T0, tick=False):
        write_checkpoint()
    # Whoever has the database (the trigger off, as a superuser can) cuts the last three entries and
    # rewinds the head to the last one kept: the chain left verifies by itself.
    kept = AuditEntry.objects.get(seq=total - 3)
    table, head_table = AuditEntry._meta.db_table, AuditChainHead._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE seq > %s", [kept.seq])  # noqa: S608 -- model table names
        cursor.execute(f"UPDATE {head_table} SET seq = %s, hash = %s", [kept.seq, kept.hash])  # noqa: S608
    reason = (
        f"chain ends at #{kept.seq} but the checkpoint of 2026-06-01T08:00:00.123456Z recorded #{total}: "
        "entries were removed from the tail"
    )
    assert verify_chain() == ChainProblem(kept.seq + 1, reason)
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit", "verify", stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 1
    assert err.getvalue() == f"audit chain broken at entry #{kept.seq + 1}: {reason}\n"


@pytest.mark.asvs("16.4.2")
def test_an_edited_checkpoint_file_is_found(world, settings):
    write_checkpoint()
    path = settings.AUDIT_CHECKPOINT_FILE
    line = json.loads(path.read_text())
    line["seq"] += 5  # claim a longer chain than there was, without the key
    path.write_text(json.dumps(line) + "\n")
    assert verify_chain() == ChainProblem(
        0, f"checkpoint file: line 1 of {path} does not match its MAC (edited or another key)"
    )
    path.write_text("not json\n")
    assert verify_chain() == ChainProblem(0, f"checkpoint file: line 1 of {path} is not a checkpoint")


@pytest.mark.asvs("16.4.2")
@pg_only
def test_on_postgresql_audit_rows_cannot_be_updated_or_deleted(world):
    seal()  # sealed entries; unsealed ones: test_audit_seal
    table = AuditEntry._meta.db_table
    statements = [
        (f"UPDATE {table} SET object_repr = 'edited' WHERE seq = 1", "UPDATE of entry #1 refused"),  # noqa: S608
        (f"DELETE FROM {table} WHERE seq = 2", "DELETE of entry #2 refused"),  # noqa: S608
    ]
    for sql, refused in statements:
        refusal = pytest.raises(DatabaseError, match=f"audit entries are append-only: {refused}")
        with refusal, transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    with pytest.raises(DatabaseError, match="append-only: UPDATE"), transaction.atomic():
        AuditEntry.objects.filter(seq=1).update(action="orders.approve")
    with pytest.raises(DatabaseError, match="append-only: DELETE"), transaction.atomic():
        AuditEntry.objects.all().delete()
    assert verify_chain() is None
    # Appending goes on, and TRUNCATE (a test database's flush, `eoms demo --reset`) is a statement, not a
    # row operation: it stays allowed (rolled back with the test).
    world.order(OrderState.QUOTING)
    assert verify_chain() is None
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
    assert AuditEntry.objects.count() == 0
