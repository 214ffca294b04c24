"""`eoms relay`: the outbox relay as its own process (production, or beside several web workers).

Delivers due outbox messages until SIGTERM or SIGINT, then finishes the batch in hand and exits 0.
"""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from eoms.core import periodic
from eoms.core.relay import relay_once


class Command(BaseCommand):
    help = "Deliver outbox messages until stopped (SIGTERM/SIGINT); --once delivers what is due and exits."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Deliver every message now due, then exit.")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds to wait when nothing is due (default EOMS_RELAY_INTERVAL, %(default)s when unset).",
        )

    def handle(self, *args, once=False, interval=None, **options):
        interval = settings.RELAY_INTERVAL if interval is None else interval
        if interval <= 0:
            raise CommandError("--interval must be greater than zero.")
        if once:
            total = self._drain()
            self.stdout.write(f"delivered {total} message(s)")
            return
        stop = threading.Event()

        def request_stop(signum, frame):
            stop.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.stdout.write(f"relay running (interval {interval:g} s); SIGTERM or Ctrl-C stops it")
        self.stdout.flush()
        total = 0
        try:
            while not stop.is_set():
                try:
                    total += self._drain(stop)
                    periodic.run_due()  # approval SLA timers and the like, idempotent
                except Exception as exc:  # a database hiccup must not end the relay; retry after a pause
                    self.stderr.write(f"relay pass failed: {type(exc).__name__}: {exc}")
                stop.wait(interval)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            close_old_connections()
        self.stdout.write(f"relay stopped; delivered {total} message(s)")

    @staticmethod
    def _drain(stop: threading.Event | None = None) -> int:
        total = 0
        if stop is not None:
            # A long-running relay drops connections the database closed or that outlived
            # EOMS_DB_CONN_MAX_AGE, as a web request does.
            close_old_connections()
        while stop is None or not stop.is_set():
            delivered = relay_once()
            total += delivered
            if not delivered:
                break
        return total
