"""What `EOMS_MODE=production` refuses to start with.

Called from eoms/settings.py before Django is set up, so this module imports nothing of Django but
the exception it raises. Every problem is collected first and reported together, one line each,
naming the variable to fix: an operator fixes the whole list in one go instead of one per restart.
"""

from django.core.exceptions import ImproperlyConfigured

# As Django's deploy check (security.W009) asks: at least 50 characters, at least 5 different ones.
MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_UNIQUE = 5
# Values copied from examples instead of generated: refused whatever their length.
PLACEHOLDER_SECRETS = {"replace_me", "change_me", "changeme", "secret", "collectstatic-only-build-step"}


def _weak_secret(value: str) -> bool:
    return (
        value.strip().lower() in PLACEHOLDER_SECRETS
        or value.startswith("django-insecure")
        or len(set(value)) < MIN_SECRET_KEY_UNIQUE
    )


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
            f"EOMS_SECRET_KEY is too short, too repetitive or a placeholder ({len(secret_key)} characters): use a "
            f"random value of at least {MIN_SECRET_KEY_LENGTH} characters."
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


def field_key_problems(*, field_keys: str, blind_index_key: str) -> list[str]:
    """Problems with the field-encryption keys (eoms.core.crypto), one operator-facing sentence each."""
    from eoms.core.crypto import CryptoError, parse_blind_index_key, parse_keyring

    problems = []
    ring = None
    if not field_keys:
        problems.append(
            "EOMS_FIELD_KEYS is not set: give the keyring of field encryption, e.g. k1:<32 random bytes in base64> "
            "(python3 -c 'import base64, os; print(\"k1:\" + base64.b64encode(os.urandom(32)).decode())')."
        )
    else:
        try:
            ring = parse_keyring(field_keys)
        except CryptoError as exc:
            problems.append(f"EOMS_FIELD_KEYS is malformed: {exc}.")
    if not blind_index_key:
        problems.append(
            "EOMS_BLIND_INDEX_KEY is not set: give the search-index key its own 32 random bytes in base64, "
            "apart from EOMS_FIELD_KEYS, and never change it afterwards."
        )
    else:
        try:
            index_key = parse_blind_index_key(blind_index_key)
        except CryptoError as exc:
            problems.append(f"EOMS_BLIND_INDEX_KEY is malformed: {exc}.")
        else:
            if ring is not None and index_key in ring.keys.values():
                problems.append("EOMS_BLIND_INDEX_KEY equals a key of EOMS_FIELD_KEYS: give it a key of its own.")
    return problems


def refuse_missing_field_keys(**values) -> None:
    """Raise ImproperlyConfigured naming every problem `field_key_problems` finds."""
    problems = field_key_problems(**values)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ImproperlyConfigured(f"EOMS_MODE=production refuses to start without field-encryption keys:\n{lines}")
