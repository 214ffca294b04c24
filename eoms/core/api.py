"""API building blocks: problem+json errors (RFC 9457), authentication, pagination helpers."""

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError

from .errors import DomainError

__all__ = ["problem", "install_error_handlers", "PROBLEM_CONTENT_TYPE", "ProblemSchema"]

PROBLEM_CONTENT_TYPE = "application/problem+json"

from ninja import Schema  # noqa: E402


class ProblemSchema(Schema):
    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict] | None = None


def problem(status: int, code: str, title: str, detail: str = "", errors: list | None = None, **extra) -> JsonResponse:
    body = {
        "type": f"https://eoms.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    return JsonResponse(
        body, status=status, content_type=PROBLEM_CONTENT_TYPE, json_dumps_params={"ensure_ascii": False}
    )


_SOURCES = frozenset({"body", "query", "path", "form", "file", "header", "cookie"})
# Names our endpoints give to a Schema parameter (`payload: OrderIn`, `filters: Query[...]`): not part
# of what the client sent. Ninja leaves them in the location of errors in list-valued query fields.
_WRAPPERS = frozenset({"payload", "filters"})


def _field_path(loc) -> str:
    """The client's name of the field in error: ("query", "filters", "state", 0) -> "state.0",
    ("file", "file") -> "file", ("body", "payload") -> "body" (the whole body is missing)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    if parts and parts[0] in _WRAPPERS:
        parts = parts[1:]
    return ".".join(parts) or "body"


def install_error_handlers(api) -> None:
    @api.exception_handler(DomainError)
    def domain_error(request: HttpRequest, exc: DomainError):
        body = exc.as_problem()
        return problem(
            body.pop("status"),
            body.pop("code"),
            body.pop("title"),
            body.pop("detail"),
            body.pop("errors", None),
            **{k: v for k, v in body.items() if k != "type"},
        )

    @api.exception_handler(NinjaValidationError)
    def validation_error(request: HttpRequest, exc: NinjaValidationError):
        errors = [
            {"field": _field_path(e.get("loc", ())), "message": e.get("msg", gettext("invalid"))} for e in exc.errors
        ]
        return problem(
            422,
            "validation_failed",
            gettext("Validation failed"),
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors,
        )

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc):
        response = problem(
            401,
            "unauthenticated",
            gettext("Authentication required"),
            gettext("Send a session cookie or 'Authorization: Bearer <API token>'."),
        )
        response["WWW-Authenticate"] = 'Bearer realm="eoms"'
        return response

    @api.exception_handler(Throttled)
    def throttled(request: HttpRequest, exc: Throttled):
        from .ratelimit import rate_limited_response

        return rate_limited_response(request.eoms_rate_limited)

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError):
        return problem(exc.status_code, f"http_{exc.status_code}", str(exc.message), str(exc.message))

    @api.exception_handler(Exception)
    def server_error(request: HttpRequest, exc: Exception):
        import logging

        logging.getLogger("eoms.api").exception("unhandled error in %s", request.path)
        return problem(
            500,
            "server_error",
            gettext("Internal server error"),
            gettext("Something failed on our side; quote request id %(request_id)s.")
            % {"request_id": getattr(request, "request_id", "")},
        )
