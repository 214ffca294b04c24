"""The processes of the chaos test (test_broker_chaos.py), run as `python -m eoms.core.tests.chaos_process`:

    worker           `eoms worker` with one extra handler of "test.chaos" events, the side effect under
                     test: it appends the message id to $CHAOS_DIR/attempts (every call, even one
                     whose transaction rolls back) and inserts one row into chaos_effect, whose primary
                     key is the message id, in the handler's transaction
    produce N CHUNK  emits N "test.chaos" events, CHUNK per transaction, over 50 aggregates

Both use the database and broker of their environment (DATABASE_URL, BROKER_URL…), like `eoms`.
"""

import os
import sys
import time
from dataclasses import dataclass

AGGREGATES = 50


def _setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eoms.settings")
    import django

    django.setup()


def main(argv: list[str]) -> int:
    _setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from eoms.core import relay
    from eoms.core.events import DomainEvent, emit

    @dataclass(frozen=True, kw_only=True)
    class Chaos(DomainEvent):
        event_type = "test.chaos"
        aggregate_type = "test.chaos"
        aggregate_field = "site"
        site: str
        n: int

    if argv[0] == "worker":
        attempts = os.path.join(os.environ["CHAOS_DIR"], "attempts")

        def effect(message):
            with open(attempts, "a") as log:
                log.write(f"{message.message_id}\n")
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO chaos_effect (message_id, n) VALUES (%s, %s)",
                    [str(message.message_id), message.payload["n"]],
                )

        relay.handles("test.chaos", name="test.chaos.effect")(effect)
        call_command("worker", *argv[1:])
        return 0
    if argv[0] == "produce":
        total, chunk = int(argv[1]), int(argv[2])
        pause = float(argv[3]) if len(argv) > 3 else 0.0
        n = 0
        while n < total:
            with transaction.atomic():
                for _ in range(min(chunk, total - n)):
                    emit(Chaos(site=f"S{n % AGGREGATES}", n=n), actor=None)
                    n += 1
            time.sleep(pause)
        print(f"produced {n}", flush=True)
        return 0
    raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
