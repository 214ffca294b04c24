"""`eoms outbox status`: how far the relay is behind, (with a broker) the dead letters waiting for
an administrator (the dead-letter page, /dead-letters/), and the failures other contexts keep
(notification deliveries that failed for good), each with the page to handle them."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db.models import Min
from django.urls import reverse
from django.utils import timezone, translation

from eoms.core.dead_letters import failure_sources
from eoms.core.models import DeadLetter, OutboxMessage


def _age(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


class Command(BaseCommand):
    help = (
        "Outbox tools. `status`: unsent backlog, age of the oldest unsent message, failing messages and, "
        "with a broker, dead letters."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, title="actions")
        sub.add_parser("status", help="Backlog, oldest unsent age, failing count, dead letters.")

    def handle(self, *args, action: str, **options):
        if action == "status":
            unsent = OutboxMessage.objects.filter(sent_at__isnull=True)
            summary = unsent.aggregate(oldest=Min("created_at"))
            backlog = unsent.count()
            failing = unsent.filter(attempts__gt=0).count()
            oldest = summary["oldest"]
            age = _age((timezone.now() - oldest).total_seconds()) if oldest else "-"
            self.stdout.write(f"backlog: {backlog} unsent message(s)")
            self.stdout.write(f"oldest unsent: {age}")
            self.stdout.write(f"failing: {failing} message(s) with failed attempts")
            if failing:
                for message in unsent.filter(attempts__gt=0).order_by("id")[:10]:
                    self.stdout.write(
                        f"  #{message.id} {message.event_type} {message.aggregate_type}:{message.aggregate_id} "
                        f"attempts={message.attempts} next={_when(message.next_attempt_at)} "
                        f"error={message.last_error[:120]}"
                    )
            dead = DeadLetter.objects.filter(state=DeadLetter.State.OPEN)
            count = dead.count()
            if settings.BROKER_URL or count:  # only consumers of a broker write dead letters
                self.stdout.write(f"dead letters: {count} open")
                for letter in dead.order_by("-dead_at")[:10]:
                    self.stdout.write(
                        f"  {letter.message_id} {letter.event_type} {letter.aggregate_type}:{letter.aggregate_id} "
                        f"attempts={letter.attempts} dead={_when(letter.dead_at)} error={letter.error[:120]}"
                    )
            # Failures a context keeps itself (notification deliveries that failed for good, ...).
            with translation.override("en"):
                for source in failure_sources():
                    self.stdout.write(f"{source.label}: {source.count()} ({reverse(source.url_name)})")
