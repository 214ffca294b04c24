"""The processes of the chaos test (test_broker_chaos.py), run as `python -m eoms.core.tests.chaos_process`:

    worker           `eoms worker` with one extra handler of "test.chaos" and "approvals.task_created"
                     events, the side effect under test: it appends the message id to
                     $CHAOS_DIR/attempts (every call, even one whose transaction rolls back) and
                     inserts one row into chaos_effect, whose primary key is the message id, in the
                     handler's transaction. The app's own handlers run as in production: notifications
                     emails the assignee of each approvals.task_created (EOMS_EMAIL_HOST…)
    produce N CHUNK [PAUSE [EVERY]]
                     emits N events, CHUNK per transaction (PAUSE s apart), over 50 aggregates: every
                     EVERY-th one (n % EVERY == EVERY - 1; 0: none) a real approvals.task_created for
                     one of four users with an email address (two English, two Chinese) whose subject
                     is "CHAOS-MAIL-<n>", the others "test.chaos"

Both use the database and broker of their environment (DATABASE_URL, BROKER_URL…), like `eoms`.
"""

import os
import sys
import time
import uuid
from dataclasses import dataclass

AGGREGATES = 50
MAIL_USERS = 4


def mail_token(n: int) -> str:
    """The subject of the n-th event when it is an approval task: it names the email it calls for."""
    return f"CHAOS-MAIL-{n:05d}"


def mail_address(n: int) -> str:
    return f"chaos{n % MAIL_USERS}@mail.example"


def _setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eoms.settings")
    import django

    django.setup()


def main(argv: list[str]) -> int:
    _setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from eoms.approvals.events import ApprovalTaskCreated
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
                    [str(message.message_id), message.payload.get("n", -1)],
                )

        relay.handles("test.chaos", "approvals.task_created", name="test.chaos.effect")(effect)
        call_command("worker", *argv[1:])
        return 0
    if argv[0] == "produce":
        total, chunk = int(argv[1]), int(argv[2])
        pause = float(argv[3]) if len(argv) > 3 else 0.0
        every = int(argv[4]) if len(argv) > 4 else 0
        from eoms.accounts.models import User

        users = [
            User.objects.create(
                username=f"chaos{i}",
                display_name=f"Chaos {i}",
                email=mail_address(i),
                language="en" if i % 2 else "zh-hans",
            )
            for i in range(MAIL_USERS)
        ]
        n = 0
        while n < total:
            with transaction.atomic():
                for _ in range(min(chunk, total - n)):
                    if every and n % every == every - 1:
                        subject = uuid.uuid4()
                        event = ApprovalTaskCreated(
                            instance_id=uuid.uuid4(),
                            subject_type="orders.order",
                            subject_id=str(subject),
                            subject_repr=mail_token(n),
                            task_id=uuid.uuid4(),
                            node_id="review",
                            assignee_id=users[n % MAIL_USERS].pk,
                            on_behalf_of_id=None,
                            due_at=None,
                        )
                    else:
                        event = Chaos(site=f"S{n % AGGREGATES}", n=n)
                    emit(event, actor=None)
                    n += 1
            time.sleep(pause)
        print(f"produced {n}", flush=True)
        return 0
    raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
