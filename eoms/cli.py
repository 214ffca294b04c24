"""The `eoms` console command: manage.py for operators.

`eoms run` starts the web server with the outbox relay in the same process, `eoms demo` loads the
demo company, `eoms audit verify` checks the audit chain; every other Django command works as well.
With RabbitMQ (BROKER_URL): `eoms relay` publishes the outbox, `eoms worker` runs the handlers,
`eoms beat` schedules the periodic jobs, `eoms outbox status` shows the backlog and dead letters.
"""

import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eoms.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    args = sys.argv[1:] if argv is None else argv
    try:
        execute_from_command_line(["eoms", *args])
    except ImproperlyConfigured as exc:
        # A refused configuration (e.g. EOMS_MODE=production with an insecure setting) is the
        # operator's to fix: say what is wrong, without a traceback.
        print(f"eoms: configuration refused: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
