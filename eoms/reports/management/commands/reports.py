"""`eoms reports rebuild-summary`: recount the order summary (the dashboards' figures) from the orders
and their history; `eoms reports check-summary`: compare it with a recount, exit 1 when they differ."""

import time

from django.core.management.base import BaseCommand, CommandError

from eoms.orders import services


class Command(BaseCommand):
    help = "Order summary behind the dashboards: rebuild-summary | check-summary"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("rebuild-summary", help="replace the order summary with a recount")
        sub.add_parser("check-summary", help="compare the order summary with a recount (exit 1 if they differ)")

    def handle(self, *args, action, **options):
        t0 = time.perf_counter()
        if action == "rebuild-summary":
            buckets = services.rebuild_order_summary()
            self.stdout.write(f"order summary rebuilt: {buckets} buckets in {time.perf_counter() - t0:.1f} s")
            return
        differing = services.check_order_summary()
        if differing:
            raise CommandError(
                f"the order summary differs from a recount in {len(differing)} buckets, e.g. {differing[0]}; "
                "run `eoms reports rebuild-summary`"
            )
        self.stdout.write(f"the order summary equals a recount ({time.perf_counter() - t0:.1f} s)")
