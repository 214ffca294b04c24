"""`eoms demo`: load the demo company (users of every role, master data, ~300 orders with histories).

The loader (eoms.demo) writes through the services of every context. Core may not import business
contexts (import-linter contract), so the loader is found by its dotted path, as Django finds
middleware; it is an operator's tool, not a dependency of the kernel.
"""

import importlib
import shutil
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from eoms.core.audit import retire_checkpoints
from eoms.core.models import AuditChainHead

LOADER = "eoms.demo"


class Command(BaseCommand):
    help = "Load the demo company into an empty database (refuses if there is data; --reset erases it first)."

    def add_arguments(self, parser):
        parser.add_argument("--orders", type=int, default=300, help="How many orders (default %(default)s).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed; the same seed gives the same data.")
        parser.add_argument(
            "--reset", action="store_true", help="Erase the WHOLE database and uploaded order files, then load."
        )

    def handle(self, *args, orders: int, seed: int, reset: bool, **options):
        if orders < 1:
            raise CommandError("--orders must be at least 1.")
        demo = importlib.import_module(LOADER)
        call_command("migrate", interactive=False, verbosity=0)
        users, loaded = demo.database_status()
        if users and not reset:
            if loaded:
                self.stdout.write("The demo company is already loaded; nothing to do (--reset reloads it).")
                self.print_logins(demo)
            else:
                self.stdout.write(
                    f"The database already holds {users} user(s) that are not the demo's; the demo loads only "
                    "into an empty database. Use --reset to ERASE everything and load the demo."
                )
            return
        if reset:
            self.erase()
        self.stdout.write(f"Loading the demo company: {orders} orders, seed {seed} …")
        summary = demo.load_demo(orders=orders, seed=seed)
        self.stdout.write(
            f"Loaded in {summary.seconds:.1f} s: {summary.users} users, {summary.org_units} org units, "
            f"{summary.customers} customers, {summary.projects} projects, {summary.suppliers} suppliers, "
            f"{summary.orders} orders ({', '.join(f'level {k}: {v}' for k, v in summary.by_level.items())}), "
            f"{summary.attachments} attachments, {summary.overdue} overdue, {summary.audit_entries} audit entries."
        )
        self.stdout.write("Orders by state: " + ", ".join(f"{state} {n}" for state, n in summary.by_state.items() if n))
        self.print_logins(demo)

    def erase(self):
        call_command("flush", interactive=False, verbosity=0)
        # flush empties every table, including the chain head that migration core.0002 seeded;
        # seed it again the same way so the new chain starts at #1 from the genesis hash.
        with transaction.atomic():
            # nosemgrep: eoms-write-outside-services -- the kernel's chain head, seeded again after the erase
            AuditChainHead.objects.get_or_create(pk=1)
        retired = retire_checkpoints()  # of the chain just erased
        if retired is not None:
            self.stdout.write(f"Audit checkpoints of the erased chain moved to {retired}.")
        orders_dir = Path(settings.MEDIA_ROOT) / "orders"
        if orders_dir.is_dir():
            shutil.rmtree(orders_dir)
        self.stdout.write("Database erased.")

    def print_logins(self, demo):
        self.stdout.write("")
        self.stdout.write("Demo logins (user / password — role):")
        for user in demo.USERS:
            self.stdout.write(
                f"  {user.username:<12} {user.password:<20} {user.role:<16} {user.display_name} ({user.duty})"
            )
