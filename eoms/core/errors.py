"""Domain errors with a stable machine code and an HTTP status.

The API renders them as application/problem+json (RFC 9457); pages show the translated message.
"""

from django.utils.translation import gettext_lazy as _

__all__ = ["DomainError", "NotFound", "PermissionDenied", "Conflict", "ValidationFailed", "InvalidInput"]


class DomainError(Exception):
    code = "error"
    status = 400
    title = _("Request failed")

    def __init__(self, detail: str = "", *, code: str | None = None, errors: list[dict] | None = None, **extra):
        super().__init__(str(detail))
        # Without a sentence of its own, the detail is the field messages: a reader sees what to fix.
        fallback = "; ".join(str(e.get("message", "")) for e in errors or [] if e.get("message"))
        self.detail = str(detail) if detail else (fallback or str(self.title))
        if code:
            self.code = code
        self.errors = errors or []
        self.extra = extra

    def as_problem(self) -> dict:
        body = {
            "type": f"https://eoms.dev/problems/{self.code}",
            "title": str(self.title),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class NotFound(DomainError):
    code = "not_found"
    status = 404
    title = _("Not found")


class PermissionDenied(DomainError):
    code = "permission_denied"
    status = 403
    title = _("Permission denied")


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = _("Conflict")


class ValidationFailed(DomainError):
    """Input that breaks a rule; `errors` lists {"field": ..., "message": ...} items."""

    code = "validation_failed"
    status = 422
    title = _("Validation failed")


InvalidInput = ValidationFailed
