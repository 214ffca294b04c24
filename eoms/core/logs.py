"""Structured logs: one renderer (structlog) for our own log lines and for every stdlib logger (Django,
gunicorn, eoms.*), JSON in production and key=value lines for a person at a console.

settings.LOGGING is `logging_config(...)`: a dictConfig whose only handler writes to stderr through a
structlog ProcessorFormatter, so a line from `logging.getLogger("django.request")` and one from
`structlog.get_logger("eoms.access")` carry the same fields. Every line written while a request is
being answered carries its request id, read from the request context (eoms.core.context, a
contextvar set by RequestContextMiddleware); values bound with structlog.contextvars are added too.

No personal data: the access line (eoms.core.metrics.MetricsMiddleware) holds the route template,
never the path with its ids or the query string, and the user's id, never a name or an address;
request bodies and headers are never logged; Django's request warnings (which print the path) and
the development server's request lines (which print the query string) are off, since the access line
says the same; SQL with its parameters is never logged, whatever the level. The last processor,
`redact`, masks the value of any key that names a secret or a personal datum (password, token,
cookie, phone, id_card, bank_account…), at any depth. It cannot see into free text: log ids and
counts as keyword fields, never a value inside the message.
"""

import functools
import os
import re
import sys
from typing import Any

import structlog
from django.core.exceptions import ImproperlyConfigured

from .context import current_request

__all__ = ["FORMATS", "REDACTED", "access_logger", "configure_structlog", "log_format", "logging_config", "redact"]

FORMATS = ("json", "console")
REDACTED = "[redacted]"

# A key containing one of these anywhere is masked ("new_password1", "csrfmiddlewaretoken", "set-cookie").
_SECRET_WORDS = re.compile(r"pass(word|wd)|secret|token|authorization|cookie|csrf|credential|private_key", re.I)
# These only as a whole word of the key ("phone", "user_phone", "id_card"), so that "footprint" or
# "sessions_total" stay readable.
_PERSONAL_WORDS = re.compile(
    r"(?:^|[_.\-])(phone|mobile|tel|email|e_mail|id_card|idcard|id_number|bank_account|bank_card|card_number"
    r"|iban|address|session|sessionid|api_key|apikey|otp|totp|signature)s?(?:$|[_.\-])",
    re.I,
)
_INTERNAL = {"_record", "_from_structlog"}


@functools.lru_cache(maxsize=4096)  # the same few keys on every line (the access line has eight)
def _sensitive(key: object) -> bool:
    if not isinstance(key, str) or key in _INTERNAL:
        return False
    return bool(_SECRET_WORDS.search(key) or _PERSONAL_WORDS.search(key))


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {k: REDACTED if _sensitive(k) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, depth + 1) for v in value)
    return value


def redact(logger, method_name: str, event_dict: dict) -> dict:
    """Mask the value of every key that names a secret or a personal datum, in nested dicts too."""
    return {
        key: (
            REDACTED
            if _sensitive(key)
            else _scrub(value)
            if isinstance(value, dict | list | tuple) and key not in _INTERNAL
            else value
        )
        for key, value in event_dict.items()
    }


def add_request_id(logger, method_name: str, event_dict: dict) -> dict:
    """The id of the request being answered, from the request context; an explicit request_id wins."""
    if not event_dict.get("request_id"):
        request_id = current_request().request_id
        if request_id:
            event_dict["request_id"] = request_id
        else:
            event_dict.pop("request_id", None)
    return event_dict


def add_pid(logger, method_name: str, event_dict: dict) -> dict:
    """Which gunicorn worker wrote the line."""
    event_dict["pid"] = os.getpid()
    return event_dict


_LEADING = ("timestamp", "level", "logger", "event", "request_id")


def leading_keys_first(logger, method_name: str, event_dict: dict) -> dict:
    """When, how bad, who and what first, so that a JSON line reads well in a terminal too."""
    ordered = {key: event_dict.pop(key) for key in _LEADING if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _shared_processors() -> list:
    """What every line gets, whether it comes from structlog or from a stdlib logger."""
    return [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        # Django's request errors pass status_code in `extra`; the request object they pass beside it
        # would print the full path with its query string, so only status_code is taken.
        structlog.stdlib.ExtraAdder(allow=["status_code"]),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def configure_structlog() -> None:
    """structlog loggers hand their event dict to the stdlib logger of the same name, whose handler
    (configured by logging_config) renders it; one path for every line."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _formatter(fmt: str) -> dict:
    if fmt == "json":
        # Tracebacks as plain text in an "exception" field: no local variables, which could hold anything.
        final = [
            add_pid,
            structlog.processors.format_exc_info,
            redact,
            leading_keys_first,
            structlog.processors.JSONRenderer(),
        ]
    else:
        final = [
            redact,
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    return {
        "()": structlog.stdlib.ProcessorFormatter,
        "foreign_pre_chain": _shared_processors(),
        "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    }


def log_format(value: str, *, production: bool) -> str:
    """EOMS_LOG_FORMAT, or JSON in production and console lines elsewhere when it is empty."""
    value = (value or "").strip().lower()
    if not value:
        return "json" if production else "console"
    if value not in FORMATS:
        raise ImproperlyConfigured(f"EOMS_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {value!r}.")
    return value


def logging_config(*, fmt: str, level: str = "INFO", stream=None) -> dict:
    """settings.LOGGING: every logger through one stderr handler in the given format (json | console).
    `stream` replaces stderr (tests read the lines back)."""
    if fmt not in FORMATS:
        raise ImproperlyConfigured(f"Unknown log format {fmt!r}; use one of {', '.join(FORMATS)}.")
    configure_structlog()
    handler: dict[str, Any] = {"class": "logging.StreamHandler", "formatter": fmt}
    if stream is not None:
        handler["stream"] = stream
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {fmt: _formatter(fmt)},
        "handlers": {"eoms": handler},
        "root": {"handlers": ["eoms"], "level": level},
        "loggers": {
            # Django's defaults add a DEBUG-only console handler and mail_admins to "django"; through
            # the root handler only.
            "django": {"handlers": [], "level": level, "propagate": True},
            # 4xx warnings name the path; the access line says the same without it. 5xx errors stay.
            "django.request": {"handlers": [], "level": "ERROR", "propagate": True},
            # runserver's request lines print the query string; the access line replaces them.
            "django.server": {"handlers": [], "level": "CRITICAL", "propagate": True},
            # SQL with its parameters (personal data) is never logged, even at DEBUG.
            "django.db.backends": {"handlers": [], "level": "INFO", "propagate": True},
        },
    }


def access_logger():
    return structlog.get_logger("eoms.access")
