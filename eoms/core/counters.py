"""Gap-tolerant, collision-free business numbers."""

from django.db import IntegrityError, transaction
from django.db.models import F

from .models import Counter

__all__ = ["next_value"]


def next_value(name: str) -> int:
    """The next value of counter `name`, unique under concurrency. Must run inside the caller's
    transaction: the row stays locked until it commits, so a rolled-back creation frees its number."""
    with transaction.atomic():
        if not Counter.objects.filter(name=name).update(value=F("value") + 1):
            try:
                with transaction.atomic():
                    Counter.objects.create(name=name, value=1)
                    return 1
            except IntegrityError:  # another creator inserted it first; fall through to increment
                Counter.objects.filter(name=name).update(value=F("value") + 1)
        return Counter.objects.values_list("value", flat=True).get(name=name)
