"""`eoms audit verify`: seal what is committed, walk the audit chain from the first entry and report the
first break, including a tail cut off below the last checkpoint. `eoms audit checkpoint`: seal, then
append the chain head to the checkpoint file (EOMS_AUDIT_CHECKPOINT_FILE) now, as the periodic job
does. `eoms audit seal`: seal the entries committed and not sealed yet now, as the relay does after
each pass (decision 0016)."""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from eoms.core import audit
from eoms.core.audit import read_checkpoints, verify_chain, write_checkpoint
from eoms.core.models import AuditChainHead, AuditEntry


class Command(BaseCommand):
    help = (
        "Audit chain tools. `verify`: check every entry's HMAC and link and that the chain reaches the last "
        "checkpoint; exit 1 at the first bad entry. `checkpoint`: record the chain head outside the database. "
        "`seal`: give the entries written since the last seal their place in the chain."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, title="actions")
        sub.add_parser("verify", help="Verify the whole chain (exit 0 intact, 1 broken).")
        sub.add_parser("checkpoint", help="Append the chain head, HMAC'd, to the checkpoint file.")
        sub.add_parser("seal", help="Seal the entries committed and not sealed yet (the relay does it too).")

    def handle(self, *args, action: str, **options):
        if action == "seal":
            sealed = audit.seal()
            head = AuditChainHead.objects.get(pk=1)
            self.stdout.write(f"sealed {sealed} audit entries; the chain ends at #{head.seq}")
            return
        if action == "checkpoint":
            result = write_checkpoint()
            where = settings.AUDIT_CHECKPOINT_FILE
            if "error" in result:
                self.stderr.write(f"audit checkpoint #{result['seq']} not written to {where}: {result['error']}")
                sys.exit(1)
            if result["written"]:
                self.stdout.write(f"audit checkpoint #{result['seq']} written to {where}")
            elif result["seq"]:
                self.stdout.write(f"audit checkpoint #{result['seq']} already in {where}")
            else:
                self.stdout.write("audit chain is empty: no checkpoint")
            return
        problem = verify_chain()
        if problem is not None:
            self.stderr.write(f"audit chain broken at entry #{problem.seq}: {problem.reason}")
            sys.exit(1)
        line = f"audit chain intact: {AuditEntry.objects.filter(seq__isnull=False).count()} entries"
        unsealed = AuditEntry.objects.filter(seq__isnull=True).count()
        if unsealed:  # committed after verify_chain sealed
            line += f" ({unsealed} written since, not sealed yet)"
        checkpoints = read_checkpoints()
        if checkpoints:
            last = max(checkpoints, key=lambda c: c.seq)
            line += f"; reaches the checkpoint #{last.seq} of {last.at}"
        self.stdout.write(line)
