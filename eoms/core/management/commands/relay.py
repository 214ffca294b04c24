"""`eoms relay`: the outbox relay as its own process (production, or beside several web workers).

Delivers due outbox messages until SIGTERM or SIGINT, then finishes the batch in hand and exits 0.
Without BROKER_URL it calls the handlers in-process and runs the periodic jobs; with it, it publishes
to RabbitMQ (confirmed) and leaves the handlers to `eoms worker` and the periodic jobs to `eoms beat`.
While the broker is away the messages wait in the outbox and the relay tries again, at most every
MAX_WAIT seconds. Several relays may run at once (see eoms.core.relay). After each pass, broker or not,
it seals the audit entries committed meanwhile (eoms.core.audit.seal).
"""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from eoms.core import periodic
from eoms.core.relay import TransportUnavailable, default_transport, drain, seal_audit

MAX_WAIT = 5.0


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
        parser.add_argument(
            "--metrics-port",
            default="",
            metavar="[HOST:]PORT",
            help="Serve this process's relay counters for Prometheus there (needs EOMS_METRICS_TOKEN).",
        )

    def handle(self, *args, once=False, interval=None, metrics_port="", **options):
        interval = settings.RELAY_INTERVAL if interval is None else interval
        if interval <= 0:
            raise CommandError("--interval must be greater than zero.")
        transport = default_transport()
        if once:
            try:
                total = drain(transport)
            except TransportUnavailable as exc:
                raise CommandError(f"the broker is unavailable ({exc}); the messages wait in the outbox.")
            finally:
                sealed = seal_audit()
            self.stdout.write(f"delivered {total} message(s); sealed {sealed} audit entries")
            return
        if metrics_port:
            from eoms.core.process_metrics import serve

            serve(metrics_port)
        stop = threading.Event()

        def request_stop(signum, frame):
            stop.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.stdout.write(f"relay running (interval {interval:g} s); SIGTERM or Ctrl-C stops it")
        if settings.BROKER_URL:
            self.stdout.write(f"publishing to the broker (exchange {transport.topology.exchange_name})")
        self.stdout.flush()
        total = 0
        away = 0  # passes in a row that found the broker unavailable
        try:
            while not stop.is_set():
                wait = interval
                try:
                    # A long-running relay drops connections the database closed or that outlived
                    # EOMS_DB_CONN_MAX_AGE, as a web request does.
                    close_old_connections()
                    total += drain(transport, stop=stop)
                    if away:
                        self.stdout.write("broker available again")
                        self.stdout.flush()
                    away = 0
                    if not settings.BROKER_URL:
                        periodic.run_due()  # approval SLA timers and the like, idempotent
                except TransportUnavailable as exc:
                    if not away:
                        self.stderr.write(f"broker unavailable, messages wait in the outbox: {exc}")
                    away += 1
                    wait = min(interval * 2**away, max(MAX_WAIT, interval))
                except Exception as exc:  # a database hiccup must not end the relay; retry after a pause
                    self.stderr.write(f"relay pass failed: {type(exc).__name__}: {exc}")
                seal_audit()  # also while the broker is away
                stop.wait(wait)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            close_old_connections()
            if hasattr(transport, "close"):
                transport.close()
        self.stdout.write(f"relay stopped; delivered {total} message(s)")
