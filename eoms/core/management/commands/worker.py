"""`eoms worker`: consume the events the relay publishes to RabbitMQ and run their handlers (the same
handlers the embedded relay calls), with retries, dead letters and the periodic jobs `eoms beat`
schedules (eoms.core.consumer). Needs BROKER_URL. Stops on SIGTERM or SIGINT after the message in
hand, which is acked or goes back to the queue: nothing is lost."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from eoms.core.consumer import QUEUES, Worker


class Command(BaseCommand):
    help = "Consume events from RabbitMQ and run their handlers (needs BROKER_URL); SIGTERM stops it."

    def add_arguments(self, parser):
        parser.add_argument(
            "--queues",
            default=",".join(QUEUES),
            help="Which queues to consume, comma-separated, of %(default)s (default all).",
        )
        parser.add_argument(
            "--prefetch",
            type=int,
            default=None,
            help="Unacked messages the broker may hand this worker at once (default EOMS_BROKER_PREFETCH).",
        )
        parser.add_argument(
            "--metrics-port",
            default="",
            metavar="[HOST:]PORT",
            help="Serve this process's consumer counters for Prometheus there (needs EOMS_METRICS_TOKEN).",
        )

    def handle(self, *args, queues: str, prefetch=None, metrics_port="", **options):
        if not settings.BROKER_URL:
            raise CommandError(
                "BROKER_URL is not set: events are delivered in-process by `eoms run` or `eoms relay`; "
                "set BROKER_URL=amqp://… to consume them from RabbitMQ."
            )
        if prefetch is not None and prefetch < 1:
            raise CommandError("--prefetch must be at least 1.")
        try:
            worker = Worker(prefetch=prefetch, queues=[q.strip() for q in queues.split(",") if q.strip()])
        except ValueError as exc:
            raise CommandError(str(exc))
        if metrics_port:
            from eoms.core.process_metrics import serve

            serve(metrics_port)
        stop = threading.Event()

        def request_stop(signum, frame):
            stop.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.stdout.write(
            f"worker running (queues {', '.join(worker.queues)}, prefetch {worker.prefetch}, "
            f"{worker.topology.max_attempts} attempts); SIGTERM or Ctrl-C stops it"
        )
        self.stdout.flush()
        try:
            worker.run(stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(
            f"worker stopped; processed {worker.processed}, failed attempts {worker.failed}, "
            f"dead-lettered {worker.dead_lettered}, dead letters recorded {worker.recorded}"
        )
