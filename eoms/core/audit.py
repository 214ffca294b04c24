"""The tamper-evident audit chain: append inside the caller's transaction, verify from the start.

Each entry's hash is HMAC-SHA256(key, canonical JSON of its content + previous hash). The key is
EOMS_AUDIT_KEY, or one derived from SECRET_KEY when that is absent; whoever edits rows without the
key cannot make a matching hash.

Whoever can delete rows can also cut the chain's tail and rewind its head, leaving a shorter chain
that verifies. Checkpoints stop that: `write_checkpoint` appends the head's seq and hash, HMAC'd, as
one JSON line to a file outside the database (EOMS_AUDIT_CHECKPOINT_FILE; the periodic job
core.audit_checkpoint and `eoms audit checkpoint` write it), and `verify_chain` requires the chain to
reach every checkpoint with the same hash there. Ship the file elsewhere as it grows (a log shipper,
a WORM bucket) so that whoever holds the database does not hold it too. On PostgreSQL a trigger also
refuses UPDATE and DELETE of audit rows (migration core.0004), though not to a superuser who
disables it.
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
from django.db import connections, router
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from .context import current_request
from .models import AuditChainHead, AuditEntry
from .rows import Insert

__all__ = ["record", "verify_chain", "ChainProblem", "normalise", "write_checkpoint", "read_checkpoints", "Checkpoint"]
__all__ += ["retire_checkpoints", "CheckpointProblem"]

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


def record(
    *, actor, action: str, object_type: str, object_id, object_repr: str = "", changes: dict | None = None
) -> AuditEntry:
    """Append one entry. Must be called inside the transaction that makes the change it records.
    The chain head is locked (SELECT … FOR UPDATE) until that transaction ends, which keeps `seq`
    gapless under concurrency. The statements are prepared (core.rows): this runs on every write.
    """
    connection = connections[router.db_for_write(AuditEntry)]
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record must run inside the transaction of the change it records")
    select_head, update_head = _head_statements(connection)
    with connection.cursor() as cursor:
        cursor.execute(select_head)
        seq, prev_hash = cursor.fetchone()
    info = current_request()
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    entry = AuditEntry(
        seq=seq + 1,
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
        prev_hash=prev_hash,
    )
    entry.hash = _hash(entry)
    _insert_entry.save(entry)
    with connection.cursor() as cursor:
        cursor.execute(update_head, [entry.seq, entry.hash])
    return entry


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
    which verifies the same). One line in one O_APPEND write, so concurrent writers do not interleave."""
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
    """Walk the chain from #1; the first problem found, or None when the chain is intact and reaches
    every checkpoint with the hash the checkpoint recorded."""
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
