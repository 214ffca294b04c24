"""`eoms audit verify`: walk the audit chain from the first entry and report the first break."""

import sys

from django.core.management.base import BaseCommand

from eoms.core.audit import verify_chain
from eoms.core.models import AuditEntry


class Command(BaseCommand):
    help = "Audit chain tools. `verify`: check every entry's HMAC and link; exit 1 at the first bad entry."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, title="actions")
        sub.add_parser("verify", help="Verify the whole chain (exit 0 intact, 1 broken).")

    def handle(self, *args, action: str, **options):
        if action == "verify":
            problem = verify_chain()
            if problem is not None:
                self.stderr.write(f"audit chain broken at entry #{problem.seq}: {problem.reason}")
                sys.exit(1)
            self.stdout.write(f"audit chain intact: {AuditEntry.objects.count()} entries")
