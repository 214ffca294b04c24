"""`eoms beat`: the scheduler of the periodic jobs (approval SLA timers…) when a broker is used. It
publishes one tick per job as its interval passes; `eoms worker` runs the job (eoms.core.consumer.Beat).
Run one. Needs BROKER_URL; without it `eoms relay` (or `eoms run`) runs the jobs itself, and
`eoms tick` runs them all once from cron."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from eoms.core import periodic
from eoms.core.consumer import Beat


class Command(BaseCommand):
    help = "Schedule the periodic jobs on RabbitMQ for the workers (needs BROKER_URL); SIGTERM stops it."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between looks at the schedule.")

    def handle(self, *args, interval: float = 1.0, **options):
        if not settings.BROKER_URL:
            raise CommandError(
                "BROKER_URL is not set: the periodic jobs run in `eoms run` or `eoms relay` (or `eoms tick` "
                "from cron); set BROKER_URL=amqp://… to schedule them on RabbitMQ."
            )
        if interval <= 0:
            raise CommandError("--interval must be greater than zero.")
        beat = Beat()
        stop = threading.Event()

        def request_stop(signum, frame):
            stop.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        jobs = ", ".join(f"{job.name} every {job.every:g} s" for job in periodic.jobs()) or "none"
        self.stdout.write(f"beat running (jobs: {jobs}); SIGTERM or Ctrl-C stops it")
        self.stdout.flush()
        try:
            beat.run(stop, interval=interval)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(f"beat stopped; {beat.sent} tick(s) sent")
