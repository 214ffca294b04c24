"""What the engine approves, kept generic: a subject type ("orders.order" today; change orders and
payments later) registers an adapter here, and the engine talks to the object only through it.

The owning context registers its adapter in its AppConfig.ready(); approvals never imports it.
Callbacks run inside the engine's transaction, so an outcome and its effect on the object commit
or roll back together.
"""

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["FieldSpec", "Subject", "SubjectAdapter", "register", "get_adapter", "adapters"]


@dataclass(frozen=True)
class FieldSpec:
    """A field conditions may test. `type` is decimal, int, choice or text; `choices` pairs
    (value, label) for choice fields."""

    name: str
    label: Any
    type: str
    choices: tuple = ()


@dataclass
class Subject:
    """One object under approval, as the engine sees it."""

    type: str
    id: str
    obj: Any
    repr: str
    project_id: Any = None
    facts: dict = field(default_factory=dict)
    url: str = ""


class SubjectAdapter(Protocol):
    type: str
    label: Any

    def fields(self) -> list[FieldSpec]: ...

    def editable_fields(self) -> list[FieldSpec]: ...

    def load(self, subject_id) -> Subject:
        """The object, without an access check; raises the context's NotFound."""

    def not_found(self) -> Exception:
        """The context's NotFound for an object of this type the actor may not see."""

    def can_view(self, actor, subject: Subject) -> bool: ...

    def user_fields(self) -> list[str]:
        """Names of the fields holding a user, for the "field" approver source."""

    def initiator_of(self, subject: Subject):
        """Who would submit the object (its creator), for simulations and dry-runs."""

    def user_field(self, subject: Subject, name: str):
        """The user held by a field of the object (e.g. its project's manager), or None."""

    def project_role_users(self, subject: Subject, project_role: str) -> list: ...

    def apply_edits(self, *, actor, subject: Subject, changes: dict) -> dict:
        """Apply an approver's edits of allowed fields; returns the diff."""

    def on_outcome(self, *, actor, subject_id: str, outcome: str, comment: str, instance) -> None:
        """React to the end of an approval: outcome is approved, rejected, returned or withdrawn.
        `instance.definition.document["on_reject"]` tells where a rejection sends the object. Given
        the id, not a loaded Subject: the object is read (and locked) by the adapter's own service."""

    def recent(self, limit: int) -> list[Subject]:
        """The last `limit` objects of this type, newest first, for dry-runs of a draft definition."""

    # Optional: load_many(ids) -> {id: Subject} (lists of tasks load a page in one query),
    # page_context(subject) -> dict (what the task page shows of the object),
    # on_task_created(subject_id, task) (e.g. point the object's stage owner at the approver).


_REGISTRY: dict[str, SubjectAdapter] = {}


def register(adapter: SubjectAdapter) -> None:
    _REGISTRY[adapter.type] = adapter


def get_adapter(subject_type: str) -> SubjectAdapter:
    try:
        return _REGISTRY[subject_type]
    except KeyError:
        raise LookupError(f"no approval subject registered for {subject_type!r}") from None


def adapters() -> dict[str, SubjectAdapter]:
    return dict(_REGISTRY)
