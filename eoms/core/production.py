"""What `EOMS_MODE=production` refuses to start with.

Called from eoms/settings.py before Django is set up, so this module imports nothing of Django but
the exception it raises. Every problem is collected first and reported together, one line each,
naming the variable to fix: an operator fixes the whole list in one go instead of one per restart.
"""

from django.core.exceptions import ImproperlyConfigured

MIN_SECRET_KEY_LENGTH = 40
# Values copied from examples instead of generated: refused whatever their length.
PLACEHOLDER_SECRETS = {"replace_me", "change_me", "changeme", "secret", "collectstatic-only-build-step"}


def _weak_secret(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDER_SECRETS or value.startswith("django-insecure")


def production_problems(
    *,
    debug: bool,
    secret_key: str,
    audit_key: str,
    database_engine: str,
    allow_sqlite: bool,
    allowed_hosts_set: bool,
) -> list[str]:
    """The insecure settings among these, as one operator-facing sentence each (empty: all good)."""
    problems = []
    if debug:
        problems.append("EOMS_DEBUG is true: debug pages show settings and source code to anyone; unset it.")
    if not secret_key:
        problems.append(
            f"EOMS_SECRET_KEY is not set: set a random value of at least {MIN_SECRET_KEY_LENGTH} characters "
            "(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    elif len(secret_key) < MIN_SECRET_KEY_LENGTH or _weak_secret(secret_key):
        problems.append(
            f"EOMS_SECRET_KEY is too short or a placeholder ({len(secret_key)} characters): use a random value of "
            f"at least {MIN_SECRET_KEY_LENGTH} characters."
        )
    if not audit_key:
        problems.append(
            "EOMS_AUDIT_KEY is not set: give the audit chain its own random key, apart from EOMS_SECRET_KEY, "
            "and never change it afterwards."
        )
    elif audit_key == secret_key:
        problems.append("EOMS_AUDIT_KEY equals EOMS_SECRET_KEY: give the audit chain a key of its own.")
    if database_engine == "django.db.backends.sqlite3" and not allow_sqlite:
        problems.append(
            "DATABASE_URL is SQLite: set DATABASE_URL to PostgreSQL or MySQL/MariaDB, or EOMS_ALLOW_SQLITE=true "
            "for a single-server installation that accepts SQLite's single writer."
        )
    if not allowed_hosts_set:
        problems.append(
            "EOMS_ALLOWED_HOSTS is not set: list the host names this server answers to, e.g. eoms.example.com."
        )
    return problems


def refuse_insecure_settings(**settings_values) -> None:
    """Raise ImproperlyConfigured naming every problem `production_problems` finds."""
    problems = production_problems(**settings_values)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ImproperlyConfigured(f"EOMS_MODE=production refuses to start with insecure settings:\n{lines}")
