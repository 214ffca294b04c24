"""`eoms run`: the embedded server of the demo and of small installations.

Migrates the database, then serves with Django's runserver (no autoreload unless --reload) and,
when EOMS_RELAY_IN_PROCESS is on, runs the outbox relay as a thread of the serving process. Static
files are served by whitenoise. For production use gunicorn or uvicorn and `eoms relay` instead.
"""

import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.commands.runserver import Command as RunserverCommand

from eoms.core.relay import RelayThread


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(RunserverCommand):
    help = "Migrate, then serve EOMS on addrport (default 127.0.0.1:8000) with the outbox relay in-process."

    default_addr = "127.0.0.1"
    default_port = "8000"
    _relay: RelayThread | None = None
    _relay_lock = threading.Lock()

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--reload",
            action="store_true",
            dest="use_reloader",
            help="Restart the server when Python files change (development).",
        )
        parser.add_argument("--skip-migrate", action="store_true", help="Do not run migrate before serving.")
        parser.set_defaults(use_reloader=False)

    def handle(self, *args, **options):
        if not options["skip_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        # whitenoise serves from the finders here; an existing STATIC_ROOT keeps it from warning.
        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
        super().handle(*args, **options)

    def inner_run(self, *args, **options):
        # inner_run executes in the process that serves requests (the reloader's child when
        # --reload is given), so the relay starts exactly once, beside the requests it follows.
        if threading.current_thread() is threading.main_thread():
            # SIGTERM (systemd, docker stop, kill) stops the server the way Ctrl-C does: exit 0.
            signal.signal(signal.SIGTERM, _interrupt)
        self.start_relay()
        super().inner_run(*args, **options)

    def start_relay(self) -> RelayThread | None:
        if not settings.RELAY_IN_PROCESS:
            return None
        with Command._relay_lock:
            if Command._relay is None or not Command._relay.is_alive():
                Command._relay = RelayThread(interval=settings.RELAY_INTERVAL)
                Command._relay.start()
                self.stdout.write(f"Outbox relay running in this process (every {settings.RELAY_INTERVAL:g} s).")
        return Command._relay
