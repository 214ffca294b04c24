"""Periodic jobs (approval SLA timers today; stage-deadline reminders later), kept generic so the
shared kernel knows no business context: a context registers its job in its AppConfig.ready().

Embedded mode (no BROKER_URL) runs due jobs from the relay thread of `eoms run` (and `eoms relay`).
With a broker, `eoms beat` publishes one tick per job to RabbitMQ as its interval passes and an
`eoms worker` runs the job (eoms.core.consumer.Beat; kombu directly, not Celery beat: see
docs/decisions/0007-message-transport.md). `eoms tick` runs every job once, for cron or a Kubernetes
CronJob, in either mode. Jobs must be idempotent: running one twice, or from two processes at once,
has the effect of running it once.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Job", "register", "jobs", "run_due", "run_all"]

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    run: Callable[[], object]
    every: float  # seconds
    last: float = 0.0


_JOBS: dict[str, Job] = {}
_LOCK = threading.Lock()


def register(name: str, run: Callable[[], object], *, every: float) -> None:
    _JOBS[name] = Job(name, run, every)


def jobs() -> list[Job]:
    return list(_JOBS.values())


def run_due(now: float | None = None) -> dict[str, object]:
    """Run the jobs whose interval has passed; a failing job is logged and tried again next time."""
    now = time.monotonic() if now is None else now
    results = {}
    with _LOCK:
        due = [job for job in _JOBS.values() if now - job.last >= job.every or job.last == 0.0]
        for job in due:
            job.last = now
    for job in due:
        try:
            results[job.name] = job.run()
        except Exception:
            log.exception("periodic job %s failed", job.name)
            results[job.name] = None
    return results


def run_all() -> dict[str, object]:
    return {job.name: job.run() for job in _JOBS.values()}
