"""API building blocks: problem+json errors (RFC 9457), authentication, pagination helpers."""

import datetime
import json
import uuid
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError
from ninja.responses import NinjaJSONEncoder

from .errors import DomainError

__all__ = [
    "problem",
    "install_error_handlers",
    "PROBLEM_CONTENT_TYPE",
    "ProblemSchema",
    "Ref",
    "UserRef",
    "EomsAPI",
    "render",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"

from ninja import NinjaAPI, Schema  # noqa: E402


class Ref(Schema):
    """Another object by id and name (a project, a customer)."""

    id: uuid.UUID
    name: str


class UserRef(Schema):
    id: uuid.UUID
    username: str
    display_name: str


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

    @api.exception_handler(MultiPartParserError)
    def unreadable_form(request: HttpRequest, exc: MultiPartParserError):
        # A multipart body Django cannot split (no boundary, cut short): the client's fault.
        title = gettext("The multipart form body cannot be read")
        return problem(400, "invalid_body", title, str(exc))

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError):
        # Ninja's own refusals, with codes of ours: a body that is not JSON, a session without its
        # CSRF token (an unsafe method with the page session).
        if exc.status_code == 400 and str(exc.message) == "Cannot parse request body":
            title = gettext("The request body is not valid JSON")
            return problem(400, "invalid_body", title, title)
        if exc.status_code == 403 and "CSRF" in str(exc.message):
            return problem(
                403,
                "csrf_failed",
                gettext("CSRF check failed"),
                gettext(
                    "A change through the page session needs the CSRF token in the X-CSRFToken header; "
                    "other clients send 'Authorization: Bearer <API token>'."
                ),
            )
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


_ANSWERS = {
    "400": "The body cannot be read (not JSON, or a multipart form without its boundary)",
    "401": "No valid credentials",
    "403": "Not allowed (or, through the page session, a change without its CSRF token)",
    "422": "Parameters or body not valid",
    "429": "Rate limit reached; retry after the Retry-After header's seconds",
}
_UNSAFE = frozenset({"post", "put", "patch", "delete"})


def document_problems(schema: dict) -> dict:
    """Say in the OpenAPI document what every operation really answers on failure: each error
    (4xx/5xx) as application/problem+json with ProblemSchema; and the answers the gateway gives
    whatever the operation — 401 where credentials are needed, 403 to a change through the page
    session without its CSRF token, 429 from the rate limits, 422 to invalid parameters or body,
    400 to a body that is not JSON. Clients (and schemathesis) then find every status they meet."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ProblemSchema", ProblemSchema.model_json_schema(ref_template="#/components/schemas/{model}"))
    content = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemSchema"}}}
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                continue
            # Ninja keys the statuses by int; the document's own spelling is a string.
            responses = operation["responses"] = {str(k): v for k, v in operation.get("responses", {}).items()}
            wanted = ["429"]
            if operation.get("security"):
                wanted.append("401")
                if method in _UNSAFE:
                    wanted.append("403")
            if operation.get("parameters") or operation.get("requestBody"):
                wanted.append("422")
            if operation.get("requestBody"):
                wanted.append("400")
            for status in wanted:
                responses.setdefault(status, {"description": _ANSWERS[status]})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    response["content"] = content
    return schema


class EomsAPI(NinjaAPI):
    """The NinjaAPI whose OpenAPI document names every failure answer: the rate limits' 429 with its
    Retry-After (eoms.core.ratelimit), then the rest (document_problems)."""

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        from .ratelimit import document_rate_limits  # (ratelimit renders its 429 with this module)

        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        return document_problems(document_rate_limits(schema))


def render(request: HttpRequest, body) -> HttpResponse:
    """A 200 JSON response as the API renders a validated one (ninja's JSONRenderer: json.dumps with
    NinjaJSONEncoder), without validating `body` against the operation's response schema again: for
    large answers built from rows already of the right types (the order list, the dashboards), where
    validation cost more than the query. UUIDs, decimals and times, most of such an answer, are
    converted by type at once instead of through the encoder's chain of isinstance tests; the JSON is
    the same (their tests compare it with the schema's)."""
    return HttpResponse(json.dumps(body, default=_default), content_type="application/json; charset=utf-8")


def _default(value):
    convert = _CONVERT.get(type(value))
    if convert is not None:
        return convert(value)
    return _NINJA.default(value)


_DJANGO = DjangoJSONEncoder()
_NINJA = NinjaJSONEncoder()
_CONVERT = {
    uuid.UUID: str,
    Decimal: str,
    datetime.datetime: _DJANGO.default,
    datetime.date: _DJANGO.default,
}
