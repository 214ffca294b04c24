"""EOMS_MODE=production refuses insecure settings at startup: the settings are loaded in a fresh process."""

import base64
import os
import subprocess
import sys

import pytest

GOOD_SECRET = "s" * 33 + "-0123456789abcdef"  # 50 characters
GOOD_AUDIT = "a" * 30 + "-fedcba9876543210"
GOOD_FIELD_KEYS = "k2:" + base64.b64encode(b"2" * 32).decode() + ",k1:" + base64.b64encode(b"1" * 32).decode()
GOOD_INDEX_KEY = base64.b64encode(b"i" * 32).decode()
GOOD_JWT_KEYS = "j1:" + base64.b64encode(b"j" * 32).decode()
PRINT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DEBUG, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
    "s.DATABASES['default']['CONN_HEALTH_CHECKS'])"
)


def _environment(tmp_path, overrides: dict) -> dict:
    """A correct production environment (every key set, a server database) with these changes (None: unset)."""
    # Not inherited: our own settings, and DJANGO_ALLOW_ASYNC_UNSAFE, which the browser tests set in this
    # process for Playwright (a deployment never has it, and the deploy checks rightly refuse it).
    leave_out = ("DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EOMS_") and k not in leave_out}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "eoms.settings",
            "EOMS_DATA_DIR": str(tmp_path),
            "EOMS_MODE": "production",
            "EOMS_SECRET_KEY": GOOD_SECRET,
            "EOMS_AUDIT_KEY": GOOD_AUDIT,
            "EOMS_FIELD_KEYS": GOOD_FIELD_KEYS,
            "EOMS_BLIND_INDEX_KEY": GOOD_INDEX_KEY,
            "EOMS_JWT_KEYS": GOOD_JWT_KEYS,
            "EOMS_ALLOWED_HOSTS": "eoms.example.com",
            "DATABASE_URL": "postgres://eoms:pw@db.example.com:5432/eoms",
        }
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _start(tmp_path, program=PRINT_SETTINGS, **overrides) -> subprocess.CompletedProcess:
    env = _environment(tmp_path, overrides)
    return subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60)


def test_a_correct_production_environment_starts_with_hsts_and_secure_cookies(tmp_path):
    result = _start(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False 31536000 None True True True"


def test_proxy_ssl_header_only_with_trusted_proxies_and_hsts_from_env(tmp_path):
    result = _start(tmp_path, EOMS_TRUSTED_PROXIES="10.0.0.0/8", EOMS_HSTS_SECONDS="3600")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False 3600 ('HTTP_X_FORWARDED_PROTO', 'https') True True True"


def test_sqlite_is_accepted_when_explicitly_allowed(tmp_path):
    result = _start(tmp_path, DATABASE_URL=None, EOMS_ALLOW_SQLITE="true")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"EOMS_DEBUG": "true"}, "EOMS_DEBUG is true"),
        ({"EOMS_SECRET_KEY": None}, "EOMS_SECRET_KEY is not set"),
        (
            {"EOMS_SECRET_KEY": "0123456789" * 4 + "abcdefghi"},
            "too short, too repetitive or a placeholder (49 characters)",
        ),
        (
            {"EOMS_SECRET_KEY": "abcd" * 20},
            "EOMS_SECRET_KEY is too short, too repetitive or a placeholder (80 characters)",
        ),
        (
            {"EOMS_SECRET_KEY": "django-insecure-" + "x" * 40},
            "EOMS_SECRET_KEY is too short, too repetitive or a placeholder",
        ),
        ({"EOMS_AUDIT_KEY": None}, "EOMS_AUDIT_KEY is not set"),
        ({"EOMS_AUDIT_KEY": GOOD_SECRET}, "EOMS_AUDIT_KEY equals EOMS_SECRET_KEY"),
        ({"DATABASE_URL": None}, "DATABASE_URL is SQLite"),
        ({"DATABASE_URL": None, "EOMS_ALLOW_SQLITE": "false"}, "DATABASE_URL is SQLite"),
        ({"EOMS_ALLOWED_HOSTS": None}, "EOMS_ALLOWED_HOSTS is not set"),
    ],
)
def test_each_insecure_setting_is_refused_by_name(tmp_path, overrides, message):
    result = _start(tmp_path, **overrides)
    assert result.returncode == 1
    assert "django.core.exceptions.ImproperlyConfigured: EOMS_MODE=production refuses to start" in result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n  - ") == 1


def test_every_problem_is_listed_at_once(tmp_path):
    result = _start(
        tmp_path, EOMS_DEBUG="1", EOMS_SECRET_KEY=None, EOMS_AUDIT_KEY=None, DATABASE_URL=None, EOMS_ALLOWED_HOSTS=None
    )
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert [p.split(" is ")[0].split(" equals ")[0] for p in problems] == [
        "  - EOMS_DEBUG",
        "  - EOMS_SECRET_KEY",
        "  - EOMS_AUDIT_KEY",
        "  - DATABASE_URL",
        "  - EOMS_ALLOWED_HOSTS",
    ]


@pytest.mark.asvs("13.3.1")
@pytest.mark.parametrize(
    ("overrides", "messages"),
    [
        ({"EOMS_FIELD_KEYS": None}, ["EOMS_FIELD_KEYS is not set"]),
        ({"EOMS_BLIND_INDEX_KEY": None}, ["EOMS_BLIND_INDEX_KEY is not set"]),
        (
            {"EOMS_FIELD_KEYS": None, "EOMS_BLIND_INDEX_KEY": None},
            ["EOMS_FIELD_KEYS is not set", "EOMS_BLIND_INDEX_KEY"],
        ),
        ({"EOMS_FIELD_KEYS": "k1:" + base64.b64encode(b"short").decode()}, ["has 5 bytes; AES-256 needs 32"]),
        ({"EOMS_FIELD_KEYS": "k1"}, ["EOMS_FIELD_KEYS is malformed"]),
        ({"EOMS_BLIND_INDEX_KEY": "not base64!"}, ["EOMS_BLIND_INDEX_KEY is malformed"]),
        ({"EOMS_BLIND_INDEX_KEY": base64.b64encode(b"2" * 32).decode()}, ["EOMS_BLIND_INDEX_KEY equals a key"]),
    ],
)
def test_production_refuses_missing_or_bad_field_encryption_keys(tmp_path, overrides, messages):
    # ASVS V13.3.1 (key material comes from the environment, never the source; production refuses to run without it)
    result = _start(tmp_path, **overrides)
    assert result.returncode == 1
    assert "EOMS_MODE=production refuses to start without field-encryption keys" in result.stderr
    for message in messages:
        assert message in result.stderr
    assert result.stderr.count("\n  - ") == len(messages)
    assert not (tmp_path / "field_keys").exists()


def test_development_mode_keeps_its_defaults(tmp_path):
    result = _start(
        tmp_path, EOMS_MODE=None, EOMS_SECRET_KEY=None, EOMS_AUDIT_KEY=None, DATABASE_URL=None, EOMS_ALLOWED_HOSTS=None
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False 0 None False False True"


def _deploy_check(tmp_path, **overrides) -> subprocess.CompletedProcess:
    """`eoms check --deploy` (Django's deploy checks) as production runs behind its TLS-terminating proxy."""
    production = {
        "EOMS_PUBLIC_URL": "https://eoms.example.com",
        "EOMS_TRUSTED_PROXIES": "10.0.0.0/8",
        "REDIS_URL": "redis://redis.example.com:6379/0",
    }
    env = _environment(tmp_path, production | overrides)
    command = [sys.executable, "-m", "django", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_deploy_checks_pass_with_zero_warnings_in_production(tmp_path):
    # ASVS V13.4 (secure configuration): `eoms check --deploy` has nothing to say about production settings
    result = _deploy_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    assert result.stderr == ""


def test_deploy_checks_would_warn_about_what_the_settings_now_set(tmp_path):
    """The check can fail: turning the HTTPS settings off brings Django's warnings back."""
    result = _deploy_check(tmp_path, EOMS_SSL_REDIRECT="false", EOMS_HSTS_INCLUDE_SUBDOMAINS="false")
    assert result.returncode == 1
    assert "security.W005" in result.stderr and "security.W008" in result.stderr
    assert "security.W021" not in result.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "True True True ['^healthz$', '^readyz$', '^metrics$']"),
        ({"EOMS_PUBLIC_URL": "http://eoms.internal:8000"}, "False True True ['^healthz$', '^readyz$', '^metrics$']"),
        ({"EOMS_PUBLIC_URL": None}, "False True True ['^healthz$', '^readyz$', '^metrics$']"),
        (
            {"EOMS_SSL_REDIRECT": "false", "EOMS_HSTS_PRELOAD": "false"},
            "False True False ['^healthz$', '^readyz$', '^metrics$']",
        ),
        (
            {"EOMS_PUBLIC_URL": None, "EOMS_SSL_REDIRECT": "true"},
            "True True True ['^healthz$', '^readyz$', '^metrics$']",
        ),
    ],
)
def test_https_redirect_follows_the_public_address_and_hsts_covers_subdomains(tmp_path, overrides, expected):
    program = (
        "import django; django.setup(); from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SECURE_REDIRECT_EXEMPT)"
    )
    result = _start(tmp_path, program, **({"EOMS_PUBLIC_URL": "https://eoms.example.com"} | overrides))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
