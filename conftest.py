import os

import pytest


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """EOMS_TEST_DB_SUFFIX=name gives this run its own test database on a server (test_eoms_name),
    so several runs can share one PostgreSQL or MariaDB at the same time."""
    suffix = os.environ.get("EOMS_TEST_DB_SUFFIX", "")
    if not suffix:
        return
    from django.conf import settings

    for db in settings.DATABASES.values():
        if db["ENGINE"] == "django.db.backends.sqlite3":
            continue
        test = db.setdefault("TEST", {})
        test["NAME"] = f"{test.get('NAME') or 'test_' + db['NAME']}_{suffix}"


@pytest.fixture(scope="session", autouse=True)
def _static_root():
    """WhiteNoise warns on every request when STATIC_ROOT does not exist (before collectstatic)."""
    from pathlib import Path

    from django.conf import settings

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """Argon2 costs ~100 ms a user, and every test builds several users. Tests hash with MD5 first;
    argon2 hashes still verify. A test about the production hasher asks for `real_password_hashers`."""
    from django.conf import settings
    from django.test.utils import override_settings

    with override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]
    ):
        yield


@pytest.fixture
def real_password_hashers(settings):
    settings.PASSWORD_HASHERS = [h for h in settings.PASSWORD_HASHERS if not h.endswith("MD5PasswordHasher")]


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RELAY_IN_PROCESS = False


@pytest.fixture(autouse=True)
def _english_unless_asked(settings):
    """EOMS speaks Chinese by default (LANGUAGE_CODE zh-hans); tests assert the English source texts,
    so they run in English: a request without Accept-Language or language cookie gets English too. A
    test about the Chinese catalogue asks for it (Accept-Language: zh-hans, or translation.override)."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def world(db):
    from eoms.testing.world import build_world

    return build_world()


@pytest.fixture(autouse=True)
def _migration_data_after_flush(request):
    """A transactional test (django_db(transaction=True), transactional_db, live_server) ends by
    flushing every table, which also removes the rows data migrations made: the audit chain head and
    the order number counters. Put them back before each such test, as a fresh database has them."""
    marker = request.node.get_closest_marker("django_db")
    transactional = (
        (marker is not None and marker.kwargs.get("transaction", marker.args[0] if marker.args else False))
        or "transactional_db" in request.fixturenames
        or "live_server" in request.fixturenames
    )
    if transactional:
        import importlib

        from django.apps import apps

        request.getfixturevalue("transactional_db")
        importlib.import_module("eoms.core.migrations.0002_chain_head").create_head(apps, None)
        importlib.import_module("eoms.orders.migrations.0002_number_counters").create_counters(apps, None)


@pytest.fixture(autouse=True)
def _own_sign_in_counters():
    """Each test counts sign-in failures under keys of its own: with Redis shared by parallel workers
    and by consecutive runs, the world's users would otherwise carry failures from test to test."""
    import uuid

    from django.test.utils import override_settings

    with override_settings(LOGIN_THROTTLE_KEY_PREFIX=f"test:{uuid.uuid4().hex}:login"):
        yield


@pytest.fixture(autouse=True)
def _own_rate_limit_counters():
    """Each test counts API requests under keys of its own (Redis is shared by parallel workers and runs)."""
    import uuid

    from django.test.utils import override_settings

    with override_settings(API_RATE_KEY_PREFIX=f"test:{uuid.uuid4().hex}:rate"):
        yield


@pytest.fixture(autouse=True)
def _own_audit_checkpoints(settings, tmp_path):
    """Each test checkpoints the audit chain into a file of its own (its chain starts empty), never
    into the data directory's file of a development database."""
    settings.AUDIT_CHECKPOINT_FILE = tmp_path / "audit-checkpoints.jsonl"


@pytest.fixture
def audit_rows_editable(db):
    """Tests that tamper with audit rows act as a database superuser would: on PostgreSQL the trigger
    that refuses UPDATE and DELETE of audit rows (core.0004) is off for the test's transaction."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
    yield
