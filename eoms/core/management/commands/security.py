"""`eoms security table [--check]`: write the OWASP ASVS 5.0 coverage table of docs/security.md from
the tests' `@pytest.mark.asvs(...)` markers (eoms.core.asvs), or with --check fail when it is stale."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from eoms.core.asvs import InvalidTag, collect, render_table, update_document


class Command(BaseCommand):
    help = (
        "Security documentation. `table`: regenerate docs/security.md's ASVS coverage table (--check: fail if stale)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "action", choices=["table"], help="table: write the ASVS table of docs/security.md from the tests' markers."
        )
        parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 when the file is stale.")
        parser.add_argument(
            "--root", type=Path, default=None, help="Repository root (default: the one EOMS runs from)."
        )

    def handle(self, *args, action: str, check: bool = False, root: Path | None = None, **options):
        root = (root or Path(settings.BASE_DIR).parent).resolve()
        try:
            covered = collect(root)
        except InvalidTag as exc:
            raise CommandError(str(exc)) from None
        document = root / "docs" / "security.md"
        current = document.read_text(encoding="utf-8") if document.exists() else None
        wanted = update_document(current, render_table(covered))
        summary = f"{len(covered)} ASVS requirements, {len({t for ts in covered.values() for t in ts})} tests"
        if check:
            if current != wanted:
                raise CommandError(f"{document} is stale ({summary}): run `eoms security table` and commit it")
            self.stdout.write(f"{document.relative_to(root)} is up to date: {summary}")
            return
        if current != wanted:
            document.parent.mkdir(parents=True, exist_ok=True)
            document.write_text(wanted, encoding="utf-8")
            self.stdout.write(f"{document.relative_to(root)} written: {summary}")
        else:
            self.stdout.write(f"{document.relative_to(root)} unchanged: {summary}")
