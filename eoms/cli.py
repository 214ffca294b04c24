"""The `eoms` console command: manage.py for operators.

`eoms run` starts the web server with the outbox relay in the same process, `eoms demo` loads the
demo company, `eoms audit verify` checks the audit chain; every other Django command works as well.
"""

import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eoms.settings")
    from django.core.management import execute_from_command_line

    args = sys.argv[1:] if argv is None else argv
    execute_from_command_line(["eoms", *args])
    return 0


if __name__ == "__main__":
    sys.exit(main())
