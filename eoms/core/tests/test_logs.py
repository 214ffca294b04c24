"""Structured logs (eoms.core.logs): the access line of real requests through the whole middleware
stack, read back as JSON from the handler's stream; the request id on every line of a request; what
must never be written (passwords, tokens, query strings, personal fields); the settings wiring."""

import io
import json
import logging
import logging.config
import os
import re
import subprocess
import sys

import pytest
import structlog
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client
from django.urls import include, path

from eoms.accounts import services as account_services
from eoms.core import logs

ACCESS_KEYS = {
    "timestamp",
    "level",
    "logger",
    "event",
    "request_id",
    "user_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "db_queries",
    "db_ms",
    "pid",
}
PASSWORD = "Never-Log-Me-7c1f"


def _view_that_fails(request):
    logging.getLogger("eoms.tests.logs").warning("about to fail")
    structlog.get_logger("eoms.tests.logs").info("still fine", step=1)
    raise RuntimeError("kaboom")


# The project's URLs plus one view that raises, for the error-line test.
urlpatterns = [path("boom/", _view_that_fails), path("", include("eoms.urls"))]


class Lines:
    def __init__(self, stream: io.StringIO):
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines()]

    def access(self) -> list[dict]:
        return [line for line in self.all() if line["logger"] == "eoms.access"]


@pytest.fixture
def lines(settings):
    """Logging as in production (JSON), into a buffer for the test; the settings' logging afterwards."""
    stream = io.StringIO()
    logging.config.dictConfig(logs.logging_config(fmt="json", level="INFO", stream=stream))
    yield Lines(stream)
    logging.config.dictConfig(settings.LOGGING)


class _Statements:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


@pytest.mark.django_db
def test_one_access_line_per_request_with_exact_fields(client, world, lines):
    order = world.order()
    client.force_login(world.pm)
    client.get(f"/api/v1/orders/{order.id}")  # warm up: session, content types
    lines.stream.truncate(0)
    lines.stream.seek(0)
    statements = _Statements()
    with connection.execute_wrapper(statements):
        response = client.get(f"/api/v1/orders/{order.id}", HTTP_X_REQUEST_ID="test-request-0001")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "test-request-0001"

    (line,) = lines.access()
    assert set(line) == ACCESS_KEYS
    assert line["request_id"] == "test-request-0001"
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["user_id"] == str(world.pm.id)
    assert line["method"] == "GET"
    assert line["route"] == "api/v1/orders/<order_id>"
    assert line["status"] == 200
    assert line["db_queries"] == statements.count > 0
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert 0 < line["db_ms"] <= line["duration_ms"]
    assert line["pid"] == os.getpid()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"])
    # route templates, not paths; ids of users only, never who they are
    assert str(order.id) not in lines.text
    assert world.pm.username not in lines.text
    if world.pm.email:
        assert world.pm.email not in lines.text


@pytest.mark.django_db
def test_a_generated_request_id_is_the_one_in_the_header(client, lines):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="no")  # too short to be taken: replaced
    (line,) = lines.access()
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert line["request_id"] == response["X-Request-ID"]
    assert (line["route"], line["status"], line["user_id"], line["db_queries"]) == ("healthz", 200, None, 0)


@pytest.mark.django_db
def test_a_sign_in_never_logs_the_password_or_the_user_name(client, world, lines):
    world.pm.set_password(PASSWORD)
    world.pm.save()
    response = client.post("/login/", {"username": world.pm.username, "password": "wrong-" + PASSWORD})
    assert response.status_code == 200
    response = client.post("/login/", {"username": world.pm.username, "password": PASSWORD})
    assert response.status_code == 302

    failed, signed_in = lines.access()
    assert (failed["method"], failed["route"], failed["status"], failed["user_id"]) == ("POST", "login/", 200, None)
    assert (signed_in["route"], signed_in["status"], signed_in["user_id"]) == ("login/", 302, str(world.pm.id))
    assert PASSWORD not in lines.text
    assert world.pm.username not in lines.text
    assert "csrf" not in lines.text.lower()


@pytest.mark.django_db
def test_no_query_string_token_or_cookie_is_logged(client, world, lines):
    _token, secret = account_services.issue_api_token(actor=world.pm, name="ci")
    response = client.get("/api/v1/orders?search=ZhangSan-13800138000", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    client.force_login(world.pm)
    session = client.cookies["sessionid"].value
    assert client.get("/orders/?q=13800138000").status_code == 200

    api, page = lines.access()
    assert (api["route"], api["user_id"]) == ("api/v1/orders", str(world.pm.id))
    assert (page["route"], page["user_id"]) == ("orders/", str(world.pm.id))
    for leaked in (secret, session, "13800138000", "ZhangSan", "search="):
        assert leaked not in lines.text


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_an_exception_in_a_view_logs_an_error_line_with_the_request_id(world, lines):
    client = Client(raise_request_exception=False)
    client.force_login(world.pm)
    response = client.get("/boom/?phone=13800138000", HTTP_X_REQUEST_ID="boom-request-42")
    assert response.status_code == 500
    assert response["X-Request-ID"] == "boom-request-42"

    by_logger = {}
    for line in lines.all():
        by_logger.setdefault(line["logger"], []).append(line)
    assert sorted(by_logger) == ["django.request", "eoms.access", "eoms.tests.logs"]

    # everything written while the request was answered carries its id
    warning, info = by_logger["eoms.tests.logs"]
    assert (warning["level"], warning["event"], warning["request_id"]) == (
        "warning",
        "about to fail",
        "boom-request-42",
    )
    assert (info["level"], info["event"], info["step"], info["request_id"]) == (
        "info",
        "still fine",
        1,
        "boom-request-42",
    )

    (error,) = by_logger["django.request"]
    assert error["level"] == "error"
    assert error["request_id"] == "boom-request-42"
    assert error["event"] == "Internal Server Error: /boom/"
    assert error["status_code"] == 500
    assert error["exception"].startswith("Traceback (most recent call last):")
    assert error["exception"].endswith("RuntimeError: kaboom")
    assert "request" not in error  # the request object would print the query string

    (access,) = by_logger["eoms.access"]
    assert (access["level"], access["status"], access["route"], access["request_id"]) == (
        "error",
        500,
        "boom/",
        "boom-request-42",
    )
    assert "13800138000" not in lines.text


@pytest.mark.django_db
def test_a_line_outside_any_request_has_no_request_id(lines):
    logging.getLogger("eoms.relay").info("relay pass")
    (line,) = lines.all()
    assert set(line) == {"timestamp", "level", "logger", "event", "pid"}
    assert (line["logger"], line["event"]) == ("eoms.relay", "relay pass")


def test_django_request_warnings_and_sql_are_not_logged(lines):
    logging.getLogger("django.request").warning("Not Found: /orders/0190aaaa/")
    logging.getLogger("django.server").error('"GET /orders/?q=secret HTTP/1.1" 500 1234')
    logging.getLogger("django.db.backends").debug("(0.001) SELECT * FROM accounts_user WHERE phone = '138'")
    logging.getLogger("django.security.csrf").warning("Forbidden (CSRF token missing.): /login/")
    (line,) = lines.all()
    assert line["logger"] == "django.security.csrf"


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "new_password1",
        "Authorization",
        "HTTP_COOKIE",
        "set-cookie",
        "csrfmiddlewaretoken",
        "api_token",
        "client_secret",
        "phone",
        "contact_phone",
        "mobile",
        "email",
        "id_card",
        "id_card_number",
        "bank_account",
        "sessionid",
        "session_key",
        "totp",
        "signature",
    ],
)
def test_redact_masks_secrets_and_personal_data_at_any_depth(key):
    event = {"event": "x", key: "v-1", "nested": {"list": [{key: "v-2", "ok": 1}], key: "v-3"}}
    assert logs.redact(None, "info", event) == {
        "event": "x",
        key: logs.REDACTED,
        "nested": {"list": [{key: logs.REDACTED, "ok": 1}], key: logs.REDACTED},
    }


def test_redact_keeps_what_is_not_personal():
    event = {
        "event": "request",
        "request_id": "r1",
        "user_id": "0190",
        "route": "api/v1/orders/<order_id>",
        "footprint": 3,
        "status": 200,
        "db_queries": 4,
        "hotpath_ms": 2,
        "telemetry": "on",
    }
    assert logs.redact(None, "info", dict(event)) == event


def test_structlog_lines_are_redacted_too(lines):
    structlog.get_logger("eoms.accounts").info("user changed", user_id="u1", password="p-1", phone="13800138000")
    (line,) = lines.all()
    assert (line["user_id"], line["password"], line["phone"]) == ("u1", logs.REDACTED, logs.REDACTED)
    assert "13800138000" not in lines.text


def test_the_format_is_json_in_production_and_console_elsewhere_unless_chosen():
    assert logs.log_format("", production=True) == "json"
    assert logs.log_format("", production=False) == "console"
    assert logs.log_format("console", production=True) == "console"
    assert logs.log_format(" JSON ", production=False) == "json"
    with pytest.raises(ImproperlyConfigured, match="EOMS_LOG_FORMAT must be one of json, console, not 'xml'"):
        logs.log_format("xml", production=False)


@pytest.mark.django_db
def test_console_lines_carry_the_same_fields(client, settings):
    stream = io.StringIO()
    logging.config.dictConfig(logs.logging_config(fmt="console", stream=stream))
    try:
        response = client.get("/healthz?email=someone@example.com", HTTP_X_REQUEST_ID="console-req-1")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    assert response.status_code == 200
    (line,) = stream.getvalue().splitlines()
    assert "[info     ] request" in line
    assert "[eoms.access]" in line
    for field in ("request_id=console-req-1", "route=healthz", "status=200", "method=GET", "user_id=None"):
        assert field in line
    assert "example.com" not in line


def _run(**env_extra) -> subprocess.CompletedProcess:
    """Settings loaded in a fresh process, which then logs through a Django logger."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EOMS_") and k != "DATABASE_URL"}
    env.update(env_extra, DJANGO_SETTINGS_MODULE="eoms.settings")
    script = "import django, logging; django.setup(); logging.getLogger('django').warning('from django'); print('done')"
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_settings_choose_the_format_from_the_environment(tmp_path):
    result = _run(EOMS_DATA_DIR=str(tmp_path), EOMS_LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    (line,) = [json.loads(x) for x in result.stderr.splitlines()]
    assert (line["logger"], line["level"], line["event"]) == ("django", "warning", "from django")

    result = _run(EOMS_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.endswith("Z [warning  ] from django                    [django]")

    result = _run(EOMS_DATA_DIR=str(tmp_path), EOMS_LOG_FORMAT="xml")
    assert result.returncode == 1
    assert "ImproperlyConfigured: EOMS_LOG_FORMAT must be one of json, console, not 'xml'" in result.stderr
