"""`eoms keys rotate` and `eoms keys status`: the field-encryption keyring (eoms.core.crypto).

To rotate: put a new key first in EOMS_FIELD_KEYS (``k2:<new>,k1:<old>``), restart, run `eoms keys
rotate`; it re-seals every encrypted value still under another key with the current one, in batches,
each batch its own transaction. Interrupted, it is simply run again: what is already under the current
key is not touched. When it reports nothing left, the old key can be removed from EOMS_FIELD_KEYS.
The blind indexes do not change (their key, EOMS_BLIND_INDEX_KEY, is separate).

Encrypted fields are found on every model that lists them in `encrypted_fields` (columns
``<field>_enc`` and ``<field>_bidx``).
"""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from eoms.core import audit, crypto


def encrypted_columns():
    """(model, field) of every encrypted field, in a stable order."""
    found = []
    for model in apps.get_models():
        for field in getattr(model, "encrypted_fields", ()):
            found.append((model, field))
    return sorted(found, key=lambda mf: (mf[0]._meta.db_table, mf[1]))


def _stale(model, field: str, current: str):
    column = f"{field}_enc"
    return (
        model.objects.exclude(**{column: ""})
        .exclude(**{f"{column}__startswith": f"{crypto.VERSION}:{current}:"})
        .order_by("pk")
    )


def rotate(*, batch_size: int = 500, limit: int | None = None, write=lambda line: None) -> dict:
    """Re-seal values not under the current key; at most `limit` values (None: all). Returns
    {"<table>.<field>": re-sealed count}. Raises CryptoError for a value that does not open."""
    ring = crypto.keyring()
    done: dict[str, int] = {}
    budget = limit
    for model, field in encrypted_columns():
        table, column = model._meta.db_table, f"{field}_enc"
        label = f"{table}.{field}"
        done[label] = 0
        remaining = _stale(model, field, ring.current_id).count()
        while remaining and (budget is None or budget > 0):
            size = batch_size if budget is None else min(batch_size, budget)
            with transaction.atomic():
                rows = list(_stale(model, field, ring.current_id).select_for_update().values_list("pk", column)[:size])
                if not rows:
                    break
                for pk, envelope in rows:
                    clear = crypto.decrypt(envelope, table=table, column=field, row_id=pk, ring=ring)
                    sealed = crypto.encrypt(clear, table=table, column=field, row_id=pk, ring=ring)
                    # nosemgrep: eoms-write-outside-services -- the same value, re-sealed; the run is audited
                    model.objects.filter(pk=pk, **{column: envelope}).update(**{column: sealed})
            done[label] += len(rows)
            if budget is not None:
                budget -= len(rows)
            remaining = _stale(model, field, ring.current_id).count()
            write(f"{label}: {done[label]} re-encrypted with {ring.current_id}, {remaining} to go")
    return done


def status() -> dict:
    """{"<table>.<field>": {key id: count}} of the values stored now."""
    result = {}
    for model, field in encrypted_columns():
        counts: dict[str, int] = {}
        column = f"{field}_enc"
        for envelope in model.objects.exclude(**{column: ""}).values_list(column, flat=True).iterator():
            key_id = crypto.key_id_of(envelope)
            counts[key_id] = counts.get(key_id, 0) + 1
        result[f"{model._meta.db_table}.{field}"] = counts
    return result


class Command(BaseCommand):
    help = (
        "Field-encryption keys. `rotate`: re-encrypt every value with the current (first) key of "
        "EOMS_FIELD_KEYS, in batches, resumable; `status`: how many values each key holds."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, title="actions")
        rotate_parser = sub.add_parser("rotate", help="Re-encrypt with the current key (safe to run again).")
        rotate_parser.add_argument("--batch-size", type=int, default=500, help="Values per transaction (500).")
        rotate_parser.add_argument("--limit", type=int, default=None, help="Stop after this many values.")
        sub.add_parser("status", help="Values per key id, for every encrypted field.")

    def handle(self, *args, action: str, **options):
        try:
            if action == "status":
                ring = crypto.keyring()
                self.stdout.write(f"current key: {ring.current_id}; keyring: {', '.join(ring.keys)}")
                for label, counts in status().items():
                    spelled = ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) or "no values"
                    self.stdout.write(f"{label}: {spelled}")
                return
            if options["batch_size"] < 1:
                raise CommandError("--batch-size must be at least 1")
            ring = crypto.keyring()
            self.stdout.write(f"re-encrypting with key {ring.current_id}")
            done = rotate(batch_size=options["batch_size"], limit=options["limit"], write=self.stdout.write)
        except crypto.CryptoError as exc:
            raise CommandError(str(exc))
        left = sum(sum(n for k, n in counts.items() if k != ring.current_id) for counts in status().values())
        total = sum(done.values())
        if total:
            with transaction.atomic():
                audit.record(
                    actor=None,
                    action="core.field_keys_rotated",
                    object_type="core.keyring",
                    object_id=ring.current_id,
                    object_repr=f"field keys → {ring.current_id}",
                    changes={"reencrypted": done, "left": left},
                )
        if left:
            self.stdout.write(f"{total} values re-encrypted; {left} still under older keys: run again to finish")
        else:
            others = [k for k in ring.keys if k != ring.current_id]
            hint = f"; keys {', '.join(others)} may now be removed from EOMS_FIELD_KEYS" if others else ""
            self.stdout.write(f"{total} values re-encrypted; every value is under {ring.current_id}{hint}")
