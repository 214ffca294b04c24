"""Who is asking, from where: carried per request (or per command) for audit entries."""

from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["RequestInfo", "current_request", "set_request_info"]


@dataclass(frozen=True)
class RequestInfo:
    ip: str | None = None
    request_id: str = ""
    user_agent: str = ""


_current: ContextVar[RequestInfo] = ContextVar("eoms_request", default=RequestInfo())  # noqa: B039 (frozen)


def current_request() -> RequestInfo:
    return _current.get()


def set_request_info(info: RequestInfo):
    return _current.set(info)


def reset_request_info(token) -> None:
    _current.reset(token)
