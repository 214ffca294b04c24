"""`eoms tick`: run every periodic job once (approval SLA reminders and timeouts…) and print what
each did. For cron or a Kubernetes CronJob where no relay process runs them; safe to run often. With a
broker, `eoms beat` schedules them for the workers instead; this still runs them here, at once."""

from django.core.management.base import BaseCommand

from eoms.core import periodic


class Command(BaseCommand):
    help = "Run every periodic job once (approval SLA timers…); idempotent."

    def handle(self, *args, **options):
        for name, result in periodic.run_all().items():
            self.stdout.write(f"{name}: {result}")
