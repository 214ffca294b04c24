"""`eoms serve`: the production web server, gunicorn over eoms.wsgi:application.

Sync workers (one request at a time each) by default, or gthread workers with --threads > 1. The
default worker count is 2 × CPUs + 1, capped by EOMS_WEB_WORKERS. SIGTERM stops gracefully: workers
finish their current request within EOMS_WEB_GRACEFUL_TIMEOUT seconds, then the server exits 0. It
does not migrate (run `eoms migrate` once per release) and does not run the outbox relay (run
`eoms relay` beside it). Static files are served by whitenoise inside the application.

Metrics add up over the workers: before any worker starts, PROMETHEUS_MULTIPROC_DIR is set to a fresh
directory (or the one given, emptied), where prometheus_client keeps every worker's values; when a
worker exits, its live gauges are dropped (gunicorn's child_exit hook) while its counters still count.
The directory is removed when the server stops. gunicorn's own log lines (workers booting, timeouts)
go through the EOMS log format; the access line is EOMS's (eoms.core.logs), not gunicorn's, which
would print query strings.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import environ
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # eoms.core.metrics.MULTIPROC_ENV; not imported here, see below

env = environ.Env()


def default_workers() -> int:
    return max(1, min(2 * (os.cpu_count() or 1) + 1, env.int("EOMS_WEB_WORKERS", default=8)))


class EomsLogger(Logger):
    """gunicorn's error log through the root logger, so its lines are rendered as every other one."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
                log.removeHandler(handler)
            log.propagate = True


def child_exit(server, worker):
    """A worker has exited: its live gauges go (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def metrics_dir() -> tuple[Path, bool]:
    """The directory for the workers' metric files, empty, and whether it is ours to remove."""
    given = os.environ.get(MULTIPROC_ENV, "")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # values of a previous run would be added to this one's
            stale.unlink()
        return path, False
    path = Path(tempfile.mkdtemp(prefix="eoms-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return path, True


class EomsApplication(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            if key == "control_socket_disable" and key not in self.cfg.settings:
                continue  # an older gunicorn has no control socket to disable
            self.cfg.set(key, value)

    def load(self):
        from eoms.wsgi import application

        return application


class Command(BaseCommand):
    help = "Serve EOMS in production with gunicorn (no migrate, no in-process relay)."

    def execute(self, *args, **options):
        # prometheus_client decides where a metric keeps its value when the metric is created, and the
        # system checks run before handle() import the URLconf and with it eoms.core.metrics: the
        # directory must be set before them. (Created here, the metrics are shared files from the start;
        # each forked worker notices its new pid and writes files of its own.)
        if "eoms.core.metrics" in sys.modules:
            raise CommandError("eoms.core.metrics was imported before `eoms serve` started; metrics would not add up.")
        path, ours = metrics_dir()
        if "prometheus_client.values" in sys.modules:
            from prometheus_client import values

            values.ValueClass = values.get_value_class()
        master = os.getpid()
        try:
            return super().execute(*args, **options)
        finally:
            # Workers are forked inside and leave through this frame too: only the master cleans up.
            if ours and os.getpid() == master:
                shutil.rmtree(path, ignore_errors=True)

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind", default=env("EOMS_WEB_BIND", default="127.0.0.1:8000"), help="host:port or unix:/path"
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="worker processes (default 2 × CPUs + 1, at most EOMS_WEB_WORKERS)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=env.int("EOMS_WEB_THREADS", default=1),
            help="threads per worker; more than 1 uses gthread workers",
        )

    def handle(self, *args, bind: str, workers: int | None, threads: int, **options):
        workers = default_workers() if workers is None else workers
        if workers < 1 or threads < 1:
            raise CommandError("--workers and --threads must be at least 1.")
        # whitenoise serves from the finders as well; an existing STATIC_ROOT keeps it from warning.
        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
        # Forked workers must not share a connection opened here.
        connections.close_all()
        gunicorn_options = {
            "bind": [bind],
            "workers": workers,
            "worker_class": "gthread" if threads > 1 else "sync",
            "threads": threads,
            "timeout": env.int("EOMS_WEB_TIMEOUT", default=30),
            "graceful_timeout": env.int("EOMS_WEB_GRACEFUL_TIMEOUT", default=30),
            "keepalive": 5,
            # When set, a worker is replaced after this many requests (with jitter); 0 keeps workers.
            "max_requests": env.int("EOMS_WEB_MAX_REQUESTS", default=0),
            "max_requests_jitter": 100,
            "accesslog": None,
            "errorlog": "-",
            "logger_class": EomsLogger,
            "child_exit": child_exit,
            "loglevel": env("EOMS_LOG_LEVEL", default="INFO").lower(),
            "proc_name": "eoms",
            # No control socket under $HOME (often read-only for the service user); signals suffice.
            "control_socket_disable": True,
        }
        if settings.TRUSTED_PROXIES:
            gunicorn_options["forwarded_allow_ips"] = ",".join(settings.TRUSTED_PROXIES)
        self.stdout.write(
            f"eoms serve: {bind}, {workers} {gunicorn_options['worker_class']} worker(s)"
            + (f" × {threads} threads" if threads > 1 else "")
        )
        self.stdout.flush()
        EomsApplication(gunicorn_options).run()
