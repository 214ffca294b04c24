"""The tamper-evident audit chain: append without a lock inside the caller's transaction, seal in order
afterwards, verify from the start (decision 0016; 0002 and 0011 before it).

`record` writes one unsealed entry (no `seq`, no hashes) in the transaction of the change it records:
one INSERT, no lock, so writers never queue on each other here. `seal` then takes the committed
unsealed entries in `id` order and, under the lock of the single AuditChainHead row, gives each the
next `seq`, the previous entry's hash as `prev_hash` and `hash` = HMAC-SHA256(key, canonical JSON of
its content + previous hash), and moves the head. The chain's order is the sealing order; `seq` is
gapless over sealed entries. The outbox relay seals after each pass (`eoms relay`, and the relay
thread of `eoms run`), within about a second of the commit; the periodic job core.audit_seal (`eoms
tick`, `eoms beat`), `eoms audit seal`, `verify_chain` and `write_checkpoint` seal too. The key is
EOMS_AUDIT_KEY, or one derived from SECRET_KEY when that is absent; whoever edits rows without the
key cannot make a matching hash.

Whoever can delete rows can also cut the chain's tail and rewind its head, leaving a shorter chain
that verifies. Checkpoints stop that: `write_checkpoint` appends the head's seq and hash, HMAC'd, as
one JSON line to a file outside the database (EOMS_AUDIT_CHECKPOINT_FILE; the periodic job
core.audit_checkpoint and `eoms audit checkpoint` write it), and `verify_chain` requires the chain to
reach every checkpoint with the same hash there. Ship the file elsewhere as it grows (a log shipper,
a WORM bucket) so that whoever holds the database does not hold it too. On PostgreSQL a trigger also
refuses DELETE of audit rows and every UPDATE but the one that seals an entry (migrations core.0004
and core.0005), though not to a superuser who disables it. Until it is sealed an entry has no hash:
on SQLite and MariaDB whoever can write the database could change or delete it in that window (about
a relay interval) without a trace.
"""

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from .context import current_request
from .models import AuditChainHead, AuditEntry
from .rows import Insert

__all__ = ["record", "seal", "verify_chain", "ChainProblem", "normalise", "write_checkpoint", "read_checkpoints"]
__all__ += ["Checkpoint", "retire_checkpoints", "CheckpointProblem", "SealFailed", "SEAL_BATCH"]

GENESIS = "0" * 64

log = logging.getLogger("eoms.core.audit")


def _key() -> bytes:
    configured = getattr(settings, "EOMS_AUDIT_KEY", "") or ""
    if configured:
        return configured.encode()
    return hashlib.sha256(b"eoms-audit-chain:" + settings.SECRET_KEY.encode()).digest()


def normalise(value):
    """JSON-safe form of a value (Decimal, dates and UUIDs become strings)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _ip(value: str | None) -> str | None:
    """An IPv6 address in the one spelling the database gives back (compressed, lower case), so the
    hash does not depend on how the request wrote it; IPv4 addresses have only one spelling."""
    if value and ":" in value:
        try:
            return clean_ipv6_address(value)
        except ValidationError:
            return value
    return value


def _canonical(entry: AuditEntry) -> bytes:
    at = entry.at.astimezone(UTC) if isinstance(entry.at, datetime) else entry.at
    body = {
        "seq": entry.seq,
        "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": str(entry.actor_id) if entry.actor_id else None,
        "actor_repr": entry.actor_repr,
        "ip": _ip(entry.ip),
        "request_id": entry.request_id,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "object_repr": entry.object_repr,
        "changes": entry.changes,
        "prev": entry.prev_hash,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _hash(entry: AuditEntry) -> str:
    return hmac.new(_key(), _canonical(entry), hashlib.sha256).hexdigest()


_insert_entry = Insert(AuditEntry)


def _head_statements(connection) -> tuple[str, str]:
    qn = connection.ops.quote_name
    table, seq, hash_ = qn(AuditChainHead._meta.db_table), qn("seq"), qn("hash")
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return (
        f"SELECT {seq}, {hash_} FROM {table} WHERE {qn('id')} = 1{lock}",
        f"UPDATE {table} SET {seq} = %s, {hash_} = %s WHERE {qn('id')} = 1",
    )


def _write_seals(connection, rows: list[tuple]) -> int:
    """Write the (seq, prev_hash, hash, id) of each row to its entry if it is still unsealed; the
    number of entries changed. On PostgreSQL one UPDATE for the batch (from arrays: half the time of
    a pipelined executemany, measured on 3000 entries); elsewhere one UPDATE per entry, executemany."""
    qn = connection.ops.quote_name
    table = qn(AuditEntry._meta.db_table)
    seq, prev, hash_, id_ = qn("seq"), qn("prev_hash"), qn("hash"), qn("id")
    # Identifiers only are formatted in (quoted above); the values are parameters.
    batch = (
        f"UPDATE {table} e SET {seq} = v.seq, {prev} = v.prev, {hash_} = v.hash "  # noqa: S608
        "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[]) AS v(seq, prev, hash, id) "
        f"WHERE e.{id_} = v.id AND e.{seq} IS NULL"
    )
    each = f"UPDATE {table} SET {seq} = %s, {prev} = %s, {hash_} = %s WHERE {id_} = %s AND {seq} IS NULL"  # noqa: S608
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(batch, [list(column) for column in zip(*rows, strict=True)])
        else:
            cursor.executemany(each, rows)
        return cursor.rowcount


def record(
    *, actor, action: str, object_type: str, object_id, object_repr: str = "", changes: dict | None = None
) -> AuditEntry:
    """Append one unsealed entry (no seq, no hashes yet: `seal` gives them). Must be called inside the
    transaction that makes the change it records, so that it commits or rolls back with it. One
    prepared INSERT (core.rows), no lock: this runs on every write.
    """
    connection = connections[router.db_for_write(AuditEntry)]
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record must run inside the transaction of the change it records")
    info = current_request()
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    entry = AuditEntry(
        seq=None,
        # Microseconds are kept on every backend we support (MySQL DATETIME(6)).
        at=timezone.now(),
        actor_id=actor_id,
        actor_repr=(getattr(actor, "username", "") or "system")[:150] if actor is not None else "system",
        ip=_ip(info.ip),
        request_id=info.request_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=str(object_repr)[:200],
        changes=normalise(changes or {}),
        prev_hash="",
        hash="",
    )
    _insert_entry.save(entry)
    return entry


class SealFailed(RuntimeError):
    """An entry read as unsealed could not be sealed (deleted or sealed meanwhile, which only a writer
    bypassing `seal` can do): the round is rolled back, nothing is sealed out of order."""


SEAL_BATCH = 500


def seal(limit: int = SEAL_BATCH) -> int:
    """Seal every entry committed and not yet sealed, oldest `id` first; the number sealed. Each batch
    of up to `limit` entries is one transaction holding the chain head's lock (SELECT … FOR UPDATE; on
    SQLite the transaction's write lock): two sealers at once take turns, and the second sees what the
    first sealed. An entry committed while a round runs is not visible to it and is sealed by a later
    one, with a later seq. Stops after a batch that was not full, so a steady stream of new entries
    does not keep it going forever."""
    total = 0
    while True:
        sealed = _seal_batch(limit)
        total += sealed
        if sealed < limit:
            return total


def _seal_batch(limit: int) -> int:
    alias = router.db_for_write(AuditEntry)
    unsealed = AuditEntry.objects.using(alias).filter(seq__isnull=True)
    if not unsealed.exists():  # the usual answer of a relay pass: no lock, no write transaction
        return 0
    connection = connections[alias]
    select_head, update_head = _head_statements(connection)
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            cursor.execute(select_head)
            head = cursor.fetchone()
        if head is None:
            raise SealFailed("the audit chain head row is missing (migration core.0002 makes it)")
        seq, prev = head
        # Read after the lock: on PostgreSQL and MariaDB (read committed) this statement sees every
        # entry committed so far, including those the previous holder of the lock sealed.
        entries = list(unsealed.order_by("id")[:limit])
        rows = []
        for entry in entries:
            seq += 1
            entry.seq, entry.prev_hash = seq, prev
            entry.hash = prev = _hash(entry)
            rows.append((entry.seq, entry.prev_hash, entry.hash, entry.pk))
        if not rows:
            return 0
        changed = _write_seals(connection, rows)
        if changed not in (-1, len(rows)):
            raise SealFailed(f"{len(rows) - changed} of {len(rows)} audit entries were not unsealed any more")
        with connection.cursor() as cursor:
            cursor.execute(update_head, [seq, prev])
    return len(rows)


def _seal_before(what: str) -> None:
    """Seal what is committed before `what` reads the chain; a failure (a head that collides with an
    existing entry, say) is logged and left to the verification to name."""
    try:
        seal()
    except (DatabaseError, SealFailed) as exc:
        log.error("audit entries not sealed before %s: %s: %s", what, type(exc).__name__, exc)


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    reason: str

    def __str__(self):
        return f"audit entry #{self.seq}: {self.reason}"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str  # ISO 8601, UTC

    def _mac(self) -> str:
        body = json.dumps({"seq": self.seq, "hash": self.hash, "at": self.at}, sort_keys=True, separators=(",", ":"))
        return hmac.new(_key(), b"eoms-audit-checkpoint:" + body.encode(), hashlib.sha256).hexdigest()

    def line(self) -> str:
        return json.dumps({"seq": self.seq, "hash": self.hash, "at": self.at, "mac": self._mac()}) + "\n"


class CheckpointProblem(ValueError):
    """A line of the checkpoint file that is not a checkpoint this key wrote."""


def _checkpoint_file() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_FILE)


def read_checkpoints() -> list[Checkpoint]:
    """Every checkpoint in the file, oldest first ([] when there is no file yet). Raises
    CheckpointProblem at the first line that is not valid or whose MAC does not match."""
    path = _checkpoint_file()
    if not path.exists():
        return []
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointProblem(f"{path} cannot be read ({type(exc).__name__})") from exc
    found = []
    for number, text in enumerate(content.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
            checkpoint = Checkpoint(seq=int(data["seq"]), hash=str(data["hash"]), at=str(data["at"]))
            mac = str(data["mac"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointProblem(f"line {number} of {path} is not a checkpoint") from exc
        if not hmac.compare_digest(mac, checkpoint._mac()):
            raise CheckpointProblem(f"line {number} of {path} does not match its MAC (edited or another key)")
        found.append(checkpoint)
    return found


def write_checkpoint() -> dict:
    """Append the chain head (seq, hash, time; HMAC'd) to the checkpoint file, unless the last
    checkpoint already holds it: running twice, or in two processes, writes it once (at worst twice,
    which verifies the same). One line in one O_APPEND write, so concurrent writers do not interleave.
    Seals first, so the checkpoint covers every entry committed until now."""
    _seal_before("the checkpoint")
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or head.seq == 0:
        return {"seq": 0, "written": False}
    path = _checkpoint_file()
    try:
        existing = read_checkpoints()
    except CheckpointProblem:
        existing = []  # verify reports it; keep checkpointing meanwhile
    if existing and (existing[-1].seq, existing[-1].hash) == (head.seq, head.hash):
        return {"seq": head.seq, "written": False}
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, Checkpoint(seq=head.seq, hash=head.hash, at=at).line().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        # A read-only or missing volume must not stop the other periodic jobs of a run (eoms tick).
        error = f"{type(exc).__name__}: {exc.strerror or exc}"
        log.error("audit checkpoint #%d not written to %s (%s)", head.seq, path, error)
        return {"seq": head.seq, "written": False, "error": error}
    return {"seq": head.seq, "written": True}


def retire_checkpoints() -> Path | None:
    """The database was erased on purpose (`eoms demo --reset`): its chain starts again at #1, so the
    checkpoints of the old chain are moved aside (kept, renamed with the time) rather than failing every
    verification. Returns where they went, or None when there were none."""
    path = _checkpoint_file()
    if not path.exists():
        return None
    retired = path.with_name(f"{path.name}.retired-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}")
    path.rename(retired)
    return retired


def verify_chain(batch: int = 2000) -> ChainProblem | None:
    """Seal what is committed, then walk the sealed entries from #1: the first problem found, or None
    when the chain is intact and reaches every checkpoint with the hash the checkpoint recorded. An
    entry still unsealed afterwards was committed after the seal's snapshot and is not reported."""
    _seal_before("verifying")
    try:
        checkpoints = read_checkpoints()
    except CheckpointProblem as exc:
        return ChainProblem(0, f"checkpoint file: {exc}")
    at_seq = {c.seq: c for c in checkpoints}
    expected_seq = 1
    prev = GENESIS
    last_id = 0
    while True:
        rows = list(AuditEntry.objects.filter(seq__gt=last_id).order_by("seq")[:batch])
        if not rows:
            break
        for entry in rows:
            if entry.seq != expected_seq:
                return ChainProblem(expected_seq, f"missing (next present is #{entry.seq})")
            if entry.prev_hash != prev:
                return ChainProblem(entry.seq, "does not follow the previous entry (reordered or inserted)")
            if not hmac.compare_digest(entry.hash, _hash(entry)):
                return ChainProblem(entry.seq, "content does not match its hash (edited)")
            checkpoint = at_seq.get(entry.seq)
            if checkpoint is not None and not hmac.compare_digest(entry.hash, checkpoint.hash):
                return ChainProblem(entry.seq, f"does not match the checkpoint of {checkpoint.at} (chain rewritten)")
            prev = entry.hash
            expected_seq += 1
            last_id = entry.seq
    head = AuditChainHead.objects.filter(pk=1).first()
    if head and head.seq != expected_seq - 1:
        return ChainProblem(expected_seq, f"chain ends at #{expected_seq - 1} but its head says #{head.seq}")
    if head and head.seq and head.hash != prev:
        return ChainProblem(head.seq, "last entry does not match the chain head")
    if checkpoints:
        furthest = max(checkpoints, key=lambda c: c.seq)
        if furthest.seq > expected_seq - 1:
            return ChainProblem(
                expected_seq,
                f"chain ends at #{expected_seq - 1} but the checkpoint of {furthest.at} recorded #{furthest.seq}: "
                "entries were removed from the tail",
            )
    return None
