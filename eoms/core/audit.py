"""The tamper-evident audit chain: append inside the caller's transaction, verify from the start.

Each entry's hash is HMAC-SHA256(key, canonical JSON of its content + previous hash). The key is
EOMS_AUDIT_KEY, or one derived from SECRET_KEY when that is absent; whoever edits rows without the
key cannot make a matching hash.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, router
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from .context import current_request
from .models import AuditChainHead, AuditEntry
from .rows import Insert

__all__ = ["record", "verify_chain", "ChainProblem", "normalise"]

GENESIS = "0" * 64


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


def verify_chain(batch: int = 2000) -> ChainProblem | None:
    """Walk the chain from #1; the first problem found, or None when the chain is intact."""
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
            prev = entry.hash
            expected_seq += 1
            last_id = entry.seq
    head = AuditChainHead.objects.filter(pk=1).first()
    if head and head.seq != expected_seq - 1:
        return ChainProblem(expected_seq, f"chain ends at #{expected_seq - 1} but its head says #{head.seq}")
    if head and head.seq and head.hash != prev:
        return ChainProblem(head.seq, "last entry does not match the chain head")
    return None
