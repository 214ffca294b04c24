"""The approval flow pages: the list of flows, the no-code editor with its live diagram and
problems, the detail of a revision (diagram, revisions, publish, BPMN export), BPMN import,
simulation, dry-run against recent orders, and migration of running approvals.

Views are thin: parse a form, read through selectors (a flow the user may not read answers 404),
call one service, render. Reading is for everyone policies.can_view_definitions allows; every
change (and the dry-run and preview, which only the editor uses) is for administrators: others get
no button and a 403 on a direct request. A domain error is shown on the page, never as a 500.

The editor keeps the flow document as JSON in a textarea. editor.js (static, no inline script)
draws the cards from it, writes every change back and asks `definition_preview` for the diagram
and the problems; without JavaScript the textarea is edited by hand and saved the same way."""

from __future__ import annotations

import json
import uuid

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from pydantic import ValidationError

from eoms.accounts.roles import ProjectRole, Role
from eoms.accounts.selectors import list_users
from eoms.core.errors import DomainError, NotFound, PermissionDenied

from .. import policies, services
from ..bpmn import export_bpmn, import_bpmn
from ..definition import (
    CHOICE_OPERATORS,
    NUMERIC_OPERATORS,
    OPERATORS,
    TEXT_OPERATORS,
    Condition,
    Document,
    DocumentInvalid,
    describe_condition,
    parse_document,
    walk_nodes,
)
from ..diagram import flow_svg
from ..errors import DefinitionConflict, DefinitionInvalid, NoApplicableFlow
from ..models import ApprovalDefinition, DefinitionStatus, InstanceState
from ..selectors import access_definition, definition_revisions, draft_of, list_definitions
from ..subjects import get_adapter
from .forms import ON_REJECT_CHOICES, DefinitionForm, DryRunForm, ImportForm, MigrateForm, put_errors

__all__ = [
    "definition_list",
    "definition_create",
    "definition_edit",
    "definition_preview",
    "definition_detail",
    "definition_publish",
    "definition_export",
    "definition_import",
    "definition_simulate",
    "definition_dry_run",
    "definition_migrate",
    "check_document",
]

EMPTY_DOCUMENT = {"nodes": [], "on_reject": "rejected"}
SEARCH_RESULTS = 20
SEARCH_WINDOW = 500  # a subject type without its own search is searched among its newest objects
# The fields of an object that hold a user, with their labels (the engine names them only).
USER_FIELD_LABELS = {
    "project_manager": gettext_lazy("Project manager"),
    "stage_owner": gettext_lazy("Stage owner"),
    "created_by": gettext_lazy("Created by"),
}


# --- access ---------------------------------------------------------------------------------------


def _deny_unless(allowed: bool) -> None:
    if not allowed:
        raise DjangoPermissionDenied(_("You may not change approval flows."))


def _fetch(actor, definition_id) -> ApprovalDefinition:
    try:
        return access_definition(actor, definition_id)
    except NotFound as exc:
        raise Http404(exc.detail)


def _domain_error(exc: DomainError) -> dict:
    """A translated title, message and items for the page's error box (orders/_error.html)."""
    items = [str(e.get("message", "")) for e in exc.errors]
    message = exc.detail if not items or exc.detail not in "; ".join(items) else ""
    return {"title": str(exc.title), "message": message, "items": items, "status": exc.status, "code": exc.code}


# --- documents and their problems -----------------------------------------------------------------


def _fields(subject_type: str) -> dict:
    try:
        return {f.name: f for f in get_adapter(subject_type).fields()}
    except LookupError:
        return {}


def _node_at(raw, loc) -> str:
    """The id of the innermost node (or branch) on a path into the raw JSON document."""
    found, obj = "", raw
    for part in loc:
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list) and isinstance(part, int) and 0 <= part < len(obj):
            obj = obj[part]
        else:
            break
        if isinstance(obj, dict) and isinstance(obj.get("id"), str) and obj.get("id"):
            found = obj["id"]
    return found


_FIELD_LABELS = {
    "name": gettext_lazy("name"),
    "id": gettext_lazy("id"),
    "approvers": gettext_lazy("approvers"),
    "recipients": gettext_lazy("recipients"),
    "source": gettext_lazy("approvers"),
    "levels": gettext_lazy("levels"),
    "sla_hours": gettext_lazy("SLA hours"),
    "remind_after_hours": gettext_lazy("reminder hours"),
    "quorum": gettext_lazy("quorum"),
    "count": gettext_lazy("quorum"),
    "percent": gettext_lazy("quorum"),
    "branches": gettext_lazy("branches"),
    "any_of": gettext_lazy("condition"),
    "value": gettext_lazy("value"),
    "field": gettext_lazy("field"),
    "operator": gettext_lazy("operator"),
}


def _readable(error: dict, raw) -> dict:
    """A pydantic error on the raw document as a translated problem naming its node."""
    loc = error.get("loc", ())
    name = next((str(p) for p in reversed(loc) if isinstance(p, str) and not p.startswith("function-")), "")
    what = str(_FIELD_LABELS.get(name, name)) or _("the document")
    kind = error.get("type", "")
    if kind == "missing":
        text = _("%(what)s is missing.") % {"what": what}
    elif kind == "string_too_short":
        text = _("%(what)s must not be empty.") % {"what": what}
    elif kind in ("string_too_long", "too_long"):
        text = _("%(what)s is too long.") % {"what": what}
    elif kind == "too_short":
        text = _("%(what)s needs at least one entry.") % {"what": what}
    elif kind == "string_pattern_mismatch":
        text = _("%(what)s must start with a letter and hold only letters, digits, - and _.") % {"what": what}
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        text = _("%(what)s is out of range.") % {"what": what}
    elif kind in ("decimal_parsing", "int_parsing", "decimal_type", "int_type", "int_from_float"):
        text = _("%(what)s must be a number.") % {"what": what}
    elif kind in ("literal_error", "union_tag_invalid", "union_tag_not_found", "enum"):
        text = _("%(what)s has a value EOMS does not know.") % {"what": what}
    elif kind == "extra_forbidden":
        text = _("%(what)s is not a setting EOMS knows.") % {"what": what}
    else:
        text = f"{what}: {error.get('msg', '')}"
    node = _node_at(raw, loc)
    return {"field": "document", "node": node, "message": text}


def _named(problems: list[dict], raw) -> list[dict]:
    """Each problem with the name of its node (for the list under the diagram)."""
    names = {}

    def visit(nodes):
        for node in nodes if isinstance(nodes, list) else []:
            if isinstance(node, dict):
                names[str(node.get("id", ""))] = str(node.get("name", "") or node.get("id", ""))
                for branch in node.get("branches") or []:
                    if isinstance(branch, dict):
                        names[str(branch.get("id", ""))] = str(branch.get("name", "") or branch.get("id", ""))
                        visit(branch.get("nodes"))

    visit(raw.get("nodes") if isinstance(raw, dict) else None)
    return [{**p, "node": p.get("node", ""), "node_name": names.get(p.get("node", ""), "")} for p in problems]


def check_document(*, raw, applies_when=None, name: str = "", subject_type: str = "orders.order") -> dict:
    """What the editor shows for a document that may not be saved yet: every problem that stops
    publishing, each naming its node (a document that cannot even be read gives the reasons, in
    words, instead), and the diagram with those nodes outlined (None when unreadable)."""
    if not isinstance(raw, dict):
        problems = [{"field": "document", "node": "", "message": _("The flow document must be a JSON object.")}]
        return {"problems": _named(problems, {}), "diagram": None}
    try:
        doc = Document.model_validate(raw)
    except ValidationError as exc:
        problems = [_readable(e, raw) for e in exc.errors()[:30]]
        return {"problems": _named(problems, raw), "diagram": None}
    draft = ApprovalDefinition(
        name=name or "-", document=raw, applies_when=applies_when or None, subject_type=subject_type
    )
    try:
        problems = services.check_definition(draft)
    except LookupError:
        problems = [{"field": "subject_type", "node": "", "message": _("Unknown object type.")}]
    bad = {p.get("node") for p in problems if p.get("node")}
    diagram = flow_svg(doc, problems_nodes=bad, fields=_fields(subject_type), user_names=_user_names(doc))
    return {"problems": _named(problems, raw), "diagram": mark_safe(diagram)}  # noqa: S308 (all text escaped)  # nosec B308 B703


def _user_names(doc: Document) -> dict:
    ids = set()
    for node, _inside, _path in walk_nodes(doc.nodes):
        source = node.approvers if node.type == "approval" else getattr(node, "recipients", None)
        if source is not None and source.source == "users":
            ids.update(source.users)
    if not ids:
        return {}
    valid = []
    for i in ids:
        try:
            valid.append(uuid.UUID(str(i)))
        except ValueError:
            continue
    return {str(u.pk): str(u) for u in get_user_model().objects.filter(pk__in=valid)}


def _applies_text(definition: ApprovalDefinition) -> str:
    fields = _fields(definition.subject_type)
    if definition.applies_when:
        try:
            return describe_condition(Condition.model_validate(definition.applies_when), fields)
        except ValidationError:
            return _("(a condition EOMS cannot read)")
    if definition.is_default:
        return _("when no other flow applies")
    return _("never: no condition and not the default flow")


def _subject_label(subject_type: str) -> str:
    try:
        return str(get_adapter(subject_type).label)
    except LookupError:
        return subject_type


# --- list -------------------------------------------------------------------------------------------


@login_required
@require_GET
def definition_list(request):
    """One row per flow (key): its published revision, its draft if any, and how it is chosen."""
    actor = request.user
    if not policies.can_view_definitions(actor):
        raise DjangoPermissionDenied(_("You may not read approval flows."))
    by_key: dict[str, list[ApprovalDefinition]] = {}
    for definition in list_definitions(actor=actor):
        by_key.setdefault(definition.key, []).append(definition)
    rows = []
    for key, revisions in by_key.items():
        revisions.sort(key=lambda d: -d.revision)
        published = next((d for d in revisions if d.status == DefinitionStatus.PUBLISHED), None)
        draft = next((d for d in revisions if d.status == DefinitionStatus.DRAFT), None)
        main = published or draft or revisions[0]
        rows.append(
            {
                "key": key,
                "main": main,
                "published": published,
                "draft": draft,
                "revisions": len(revisions),
                "applies": _applies_text(main),
                "subject": _subject_label(main.subject_type),
            }
        )
    rows.sort(key=lambda r: (r["main"].priority, r["key"]))
    return render(
        request,
        "approvals/definitions/list.html",
        {"rows": rows, "can_manage": policies.can_manage_definitions(actor)},
    )


# --- editor -----------------------------------------------------------------------------------------


def _editor_meta(actor, subject_type: str) -> dict:
    """Everything editor.js needs to draw its pickers, and every text it shows (translated here)."""
    try:
        adapter = get_adapter(subject_type)
        fields = adapter.fields()
        editable = adapter.editable_fields()
        user_fields = list(getattr(adapter, "user_fields", lambda: [])())
    except LookupError:
        fields, editable, user_fields = [], [], []
    operators = {
        "decimal": sorted(NUMERIC_OPERATORS, key=list(OPERATORS).index),
        "int": sorted(NUMERIC_OPERATORS, key=list(OPERATORS).index),
        "choice": sorted(CHOICE_OPERATORS, key=list(OPERATORS).index),
        "text": sorted(TEXT_OPERATORS, key=list(OPERATORS).index),
    }
    return {
        "fields": [
            {
                "name": f.name,
                "label": str(f.label),
                "type": f.type,
                "choices": [[str(v), str(lbl)] for v, lbl in f.choices],
            }
            for f in fields
        ],
        "operators": operators,
        "operator_labels": {
            "eq": "=",
            "ne": "≠",
            "gt": ">",
            "gte": "≥",
            "lt": "<",
            "lte": "≤",
            "in": _("is one of"),
            "not_in": _("is none of"),
            "contains": _("contains"),
        },
        "editable": [{"name": f.name, "label": str(f.label)} for f in editable],
        "user_fields": [[name, str(USER_FIELD_LABELS.get(name, name))] for name in user_fields],
        "roles": [[v, str(lbl)] for v, lbl in Role.choices],
        "project_roles": [[ProjectRole.PM.value, _("The project's PM")], ["engineer", _("The project's engineers")]],
        "users": [
            [str(u.pk), f"{u} ({u.username})" if str(u) != u.username else u.username] for u in list_users(actor=actor)
        ],
        "sources": [
            ["role", _("Everyone with a role")],
            ["users", _("Named users")],
            ["project_role", _("A role in the order's project")],
            ["manager", _("The initiator's managers")],
            ["picked", _("Picked by the initiator at submission")],
            ["field", _("The user in a field of the order")],
        ],
        "modes": [
            ["any", _("Any one approves (或签)")],
            ["all", _("All must approve (会签)")],
            ["sequence", _("One after another (依次)")],
            ["quorum", _("A quorum")],
        ],
        "timeouts": [
            ["none", _("Nothing (reminders only)")],
            ["escalate", _("Escalate to the approver's manager")],
            ["approve", _("Approve automatically")],
            ["reject", _("Reject automatically")],
        ],
        "if_empty": [
            ["", _("— (a problem when no approver is found)")],
            ["admins", _("Send to the administrators")],
            ["approve", _("Approve automatically")],
        ],
        "i18n": {
            "approval": _("Approval"),
            "cc": _("CC"),
            "branch": _("Branch"),
            "parallel": _("Parallel"),
            "add": _("Add:"),
            "insert": _("Insert a node here"),
            "up": _("Move up"),
            "down": _("Move down"),
            "remove": _("Remove"),
            "name": _("Name"),
            "approvers": _("Approvers"),
            "recipients": _("Copy to"),
            "add_user": _("Add a user…"),
            "no_users": _("No user named yet."),
            "remove_user": _("Remove %(name)s"),
            "role": _("Role"),
            "choose": _("Choose…"),
            "project_role": _("Project role"),
            "levels": _("Levels up"),
            "chain": _("Every manager up to that level, one after another (连续多级主管)"),
            "picked_hint": _("The initiator chooses the approver when submitting the order."),
            "field": _("Field"),
            "mode": _("Mode"),
            "quorum_count": _("Number of approvals"),
            "quorum_percent": _("Percentage of approvers"),
            "quorum_kind": _("Quorum as"),
            "quorum_value": _("Quorum"),
            "sla": _("SLA (working hours)"),
            "remind": _("Remind after (working hours)"),
            "on_timeout": _("When the SLA runs out"),
            "editable": _("Approvers may edit"),
            "comment_required": _("A comment is required to reject"),
            "self_approval": _("The initiator may approve their own order"),
            "if_empty": _("If no approver is found"),
            "more": _("Time limits and rules"),
            "branches": _("Branches"),
            "add_branch": _("Add a branch"),
            "default_branch": _("Default branch (taken when no condition holds)"),
            "condition": _("Condition"),
            "no_condition": _("No condition yet."),
            "applies_always": _("No condition: the flow is chosen only as the default flow."),
            "add_rule": _("Add a condition"),
            "and": _("and"),
            "or": _("or"),
            "add_and": _("+ and"),
            "add_or": _("+ or"),
            "all_of": _("All of these hold:"),
            "remove_rule": _("Remove this condition"),
            "operator": _("Operator"),
            "value": _("Value"),
            "values_hint": _("Values, separated by commas"),
            "empty_branch": _("No node: the flow passes straight on."),
            "empty_flow": _("No node yet: add an approval node."),
            "branch_name": _("Condition %(n)s"),
            "otherwise": _("Otherwise"),
            "parallel_branch_name": _("Branch %(n)s"),
            "new_approval": _("Approval %(n)s"),
            "new_cc": _("CC %(n)s"),
            "new_branch": _("Condition branch %(n)s"),
            "new_parallel": _("Parallel %(n)s"),
            "json_error": _("The JSON cannot be read: %(error)s"),
            "id": _("id"),
            "branch_of": pgettext("one way out of a branch or parallel node", "Branch"),
        },
    }


def _json_text(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2) if value else ""


def _initial(definition: ApprovalDefinition | None) -> dict:
    if definition is None:
        return {
            "document": _json_text(EMPTY_DOCUMENT),
            "applies_when": "",
            "on_reject": "rejected",
            "priority": 100,
            "subject_type": "orders.order",
        }
    return {
        "name": definition.name,
        "description": definition.description,
        "priority": definition.priority,
        "is_default": definition.is_default,
        "on_reject": (definition.document or {}).get("on_reject", "rejected"),
        "applies_when": _json_text(definition.applies_when),
        "document": _json_text(definition.document or EMPTY_DOCUMENT),
    }


def _editor_page(request, form, definition, *, status=200, error=None, checked=None):
    """The editor, showing the document of `form` (posted or initial) with its problems."""
    actor = request.user
    subject_type = definition.subject_type if definition else (form["subject_type"].value() or "orders.order")
    if checked is None:
        raw_text = form["document"].value() or ""
        try:
            raw = json.loads(raw_text)
        except (TypeError, json.JSONDecodeError):
            raw = None
        try:
            when = json.loads(form["applies_when"].value() or "null")
        except json.JSONDecodeError:
            when = None
        checked = check_document(
            raw=raw,
            applies_when=when if isinstance(when, dict) else None,
            name=form["name"].value() or "",
            subject_type=subject_type,
        )
    draft_of_key = None
    if definition is not None and definition.status != DefinitionStatus.DRAFT:
        draft_of_key = draft_of(actor=request.user, key=definition.key)
    next_revision = None
    if definition is not None and definition.status != DefinitionStatus.DRAFT:
        latest = definition_revisions(actor=request.user, key=definition.key).first()
        next_revision = latest.revision + 1
    return render(
        request,
        "approvals/definitions/editor.html",
        {
            "form": form,
            "definition": definition,
            "subject_type": subject_type,
            "meta": _editor_meta(actor, subject_type),
            "checked": checked,
            "error": error,
            "next_revision": next_revision,
            "draft_of_key": draft_of_key,
            "preview_url": reverse("approvals:definition_preview"),
        },
        status=status,
    )


def _save(request, form, definition):
    """Save the posted flow (and publish it when asked); the response: a redirect, or the editor
    again with what stopped it."""
    actor = request.user
    data = form.cleaned_data
    subject_type = definition.subject_type if definition else data["subject_type"]
    checked = check_document(
        raw=data["document"], applies_when=data["applies_when"], name=data["name"], subject_type=subject_type
    )
    if checked["diagram"] is None:  # not even a document: nothing to save
        error = {
            "title": _("The flow cannot be read"),
            "message": _("Nothing was saved. Correct the problems listed with the diagram."),
            "items": [],
            "status": 422,
            "code": "approval.definition_invalid",
        }
        return _editor_page(request, form, definition, status=422, error=error, checked=checked)
    values = {
        "name": data["name"],
        "document": data["document"],
        "description": data["description"],
        "priority": data["priority"],
        "is_default": data["is_default"],
        "applies_when": data["applies_when"],
    }
    try:
        if definition is None:
            saved = services.save_definition(actor=actor, key=data["key"], subject_type=subject_type, **values)
        else:
            saved = services.save_definition(
                actor=actor, definition_id=definition.pk, expected_version=data["version"], **values
            )
    except DefinitionConflict as exc:
        if exc.extra.get("draft_id"):
            messages.error(request, exc.detail)
            return redirect("approvals:definition_edit", definition_id=exc.extra["draft_id"])
        changed = _("%(name)s was changed by someone else while you were editing.") % {"name": definition}
        messages.error(request, f"{changed} {_('The editor now shows the saved flow; make your change again.')}")
        return redirect(request.path)
    except DomainError as exc:
        if isinstance(exc, PermissionDenied):
            raise DjangoPermissionDenied(exc.detail)
        left = put_errors(form, exc.errors)
        error = _domain_error(exc) if left or not exc.errors else None
        if error is not None:
            error["items"] = left
        return _editor_page(request, form, definition, status=exc.status, error=error, checked=checked)

    if definition is not None and saved.pk != definition.pk:
        saved_message = _("Saved as draft revision %(rev)s of %(name)s; revision %(old)s is unchanged.") % {
            "rev": saved.revision,
            "name": saved.name,
            "old": definition.revision,
        }
    else:
        saved_message = _("Saved draft revision %(rev)s of %(name)s.") % {"rev": saved.revision, "name": saved.name}
    if request.POST.get("action") != "publish":
        messages.success(request, saved_message)
        return redirect("approvals:definition_edit", definition_id=saved.pk)
    try:
        published = services.publish_definition(actor=actor, definition_id=saved.pk, expected_version=saved.version)
    except DomainError as exc:
        messages.warning(
            request,
            _("%(saved)s It was not published: %(count)s problem(s), listed with the diagram.")
            % {"saved": saved_message, "count": len(exc.errors) or 1},
        )
        if not exc.errors:
            messages.error(request, exc.detail)
        return redirect("approvals:definition_edit", definition_id=saved.pk)
    messages.success(
        request, _("Published revision %(rev)s of %(name)s.") % {"rev": published.revision, "name": published.name}
    )
    return redirect("approvals:definition", definition_id=published.pk)


@login_required
@require_http_methods(["GET", "POST"])
def definition_create(request):
    _deny_unless(policies.can_manage_definitions(request.user))
    form = DefinitionForm(request.POST or None, creating=True, initial=_initial(None))
    if request.method == "POST":
        if form.is_valid():
            return _save(request, form, None)
        return _editor_page(request, form, None, status=422)
    return _editor_page(request, form, None)


@login_required
@require_http_methods(["GET", "POST"])
def definition_edit(request, definition_id):
    """Edit a draft in place; on a published (or superseded) revision the save makes the next
    revision as a draft, and while the flow has a draft, the editor opens that draft instead."""
    actor = request.user
    definition = _fetch(actor, definition_id)
    _deny_unless(policies.can_manage_definitions(actor))
    if request.method == "GET" and definition.status != DefinitionStatus.DRAFT:
        draft = draft_of(actor=actor, key=definition.key)
        if draft is not None:
            messages.info(
                request,
                _("Revision %(rev)s is the draft of this flow; you are editing it.") % {"rev": draft.revision},
            )
            return redirect("approvals:definition_edit", definition_id=draft.pk)
    form = DefinitionForm(
        request.POST or None, creating=False, version=definition.version, initial=_initial(definition)
    )
    if request.method == "POST":
        if form.is_valid():
            return _save(request, form, definition)
        return _editor_page(request, form, definition, status=422)
    return _editor_page(request, form, definition)


@login_required
@require_POST
def definition_preview(request):
    """The live diagram and the problems of the document being edited (nothing is saved)."""
    _deny_unless(policies.can_manage_definitions(request.user))
    text = request.POST.get("document", "")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        checked = {
            "problems": [
                {
                    "field": "document",
                    "node": "",
                    "node_name": "",
                    "message": _("The flow document is not valid JSON: %(error)s (line %(line)s, column %(column)s).")
                    % {"error": exc.msg, "line": exc.lineno, "column": exc.colno},
                }
            ],
            "diagram": None,
        }
        return render(request, "approvals/definitions/_preview.html", {"checked": checked})
    when_text = (request.POST.get("applies_when") or "").strip()
    try:
        when = json.loads(when_text) if when_text else None
    except json.JSONDecodeError:
        when = None
    if isinstance(raw, dict) and request.POST.get("on_reject") in dict(ON_REJECT_CHOICES):
        raw = {**raw, "on_reject": request.POST["on_reject"]}
    subject_type = request.POST.get("subject_type") or "orders.order"
    checked = check_document(
        raw=raw,
        applies_when=when if isinstance(when, dict) else None,
        name=request.POST.get("name", "").strip(),
        subject_type=subject_type,
    )
    if when_text and not isinstance(when, dict):
        checked["problems"].append(
            {"field": "applies_when", "node": "", "node_name": "", "message": _("The condition is not valid JSON.")}
        )
    return render(request, "approvals/definitions/_preview.html", {"checked": checked})


# --- detail, publish, export ------------------------------------------------------------------------


def _detail_page(request, definition, *, status=200, error=None):
    actor = request.user
    revisions = list(
        definition_revisions(actor=actor, key=definition.key)
        .select_related("published_by", "created_by")
        .annotate(running=Count("instances", filter=Q(instances__state=InstanceState.RUNNING)))
        .order_by("-revision")
    )
    published = next((d for d in revisions if d.status == DefinitionStatus.PUBLISHED), None)
    draft = next((d for d in revisions if d.status == DefinitionStatus.DRAFT), None)
    checked = check_document(
        raw=definition.document,
        applies_when=definition.applies_when,
        name=definition.name,
        subject_type=definition.subject_type,
    )
    can_manage = policies.can_manage_definitions(actor)
    running = next((d.running for d in revisions if d.pk == definition.pk), 0)
    return render(
        request,
        "approvals/definitions/detail.html",
        {
            "definition": definition,
            "revisions": revisions,
            "published": published,
            "draft": draft,
            "checked": checked,
            "applies": _applies_text(definition),
            "subject": _subject_label(definition.subject_type),
            "on_reject": dict(ON_REJECT_CHOICES).get((definition.document or {}).get("on_reject", "rejected"), ""),
            "can_manage": can_manage,
            "can_publish": can_manage and definition.status == DefinitionStatus.DRAFT,
            "edit_target": draft or definition,
            "running": running,
            "can_migrate": policies.can_migrate(actor)
            and running > 0
            and published is not None
            and published.pk != definition.pk,
            "error": error,
        },
        status=status,
    )


@login_required
@require_GET
def definition_detail(request, definition_id):
    return _detail_page(request, _fetch(request.user, definition_id))


@login_required
@require_POST
def definition_publish(request, definition_id):
    """Publish a draft as shown (its version); every problem is listed and nothing is published."""
    actor = request.user
    definition = _fetch(actor, definition_id)
    _deny_unless(policies.can_manage_definitions(actor))
    try:
        version = int(request.POST.get("version", ""))
    except ValueError:
        version = None
    try:
        published = services.publish_definition(actor=actor, definition_id=definition.pk, expected_version=version)
    except DomainError as exc:
        if isinstance(exc, PermissionDenied):
            raise DjangoPermissionDenied(exc.detail)
        return _detail_page(request, _fetch(actor, definition_id), status=exc.status, error=_domain_error(exc))
    messages.success(
        request, _("Published revision %(rev)s of %(name)s.") % {"rev": published.revision, "name": published.name}
    )
    return redirect("approvals:definition", definition_id=published.pk)


@login_required
@require_GET
def definition_export(request, definition_id):
    """The revision as a BPMN 2.0 file, for bpmn.io and Camunda Modeler."""
    definition = _fetch(request.user, definition_id)
    try:
        content = export_bpmn(parse_document(definition.document), key=definition.key, name=definition.name)
    except DocumentInvalid as exc:
        error = DefinitionInvalid(errors=exc.errors)
        return _detail_page(request, definition, status=422, error=_domain_error(error))
    response = HttpResponse(content, content_type="application/xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{definition.key}-v{definition.revision}.bpmn"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- import -----------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def definition_import(request):
    """A BPMN file becomes a draft: a new flow, or the next draft revision of the flow with that key
    (refused while that flow already has a draft, which the import would overwrite)."""
    actor = request.user
    _deny_unless(policies.can_manage_definitions(actor))
    form = ImportForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                doc, info = import_bpmn(form.cleaned_data["file"])
                key = slugify(form.cleaned_data["key"] or info.get("key") or info.get("name") or "")[:60]
                name = (info.get("name") or key or _("Imported flow"))[:120]
                revisions = list(list_definitions(actor=actor).filter(key=key)) if key else []
                if any(d.status == DefinitionStatus.DRAFT for d in revisions):
                    draft = next(d for d in revisions if d.status == DefinitionStatus.DRAFT)
                    form.add_error(
                        "key",
                        _(
                            "The flow %(key)s already has a draft (revision %(rev)s); publish it, or import under "
                            "another key."
                        )
                        % {"key": key, "rev": draft.revision},
                    )
                    raise _Stop
                if revisions:
                    base = max(revisions, key=lambda d: d.revision)
                    saved = services.save_definition(
                        actor=actor,
                        definition_id=base.pk,
                        name=name,
                        document=doc,
                        description=base.description,
                        priority=base.priority,
                        is_default=base.is_default,
                        applies_when=base.applies_when,
                    )
                else:
                    saved = services.save_definition(actor=actor, key=key, name=name, document=doc)
            except _Stop:
                pass
            except DomainError as exc:
                if isinstance(exc, PermissionDenied):
                    raise DjangoPermissionDenied(exc.detail)
                for message in put_errors(form, exc.errors) or ([] if exc.errors else [exc.detail]):
                    form.add_error("file", message)
            else:
                messages.success(
                    request,
                    _("Imported %(name)s as draft revision %(rev)s; check it and publish it.")
                    % {"name": saved.name, "rev": saved.revision},
                )
                return redirect("approvals:definition_edit", definition_id=saved.pk)
    return render(request, "approvals/definitions/import.html", {"form": form}, status=status)


class _Stop(Exception):
    """The import form already holds the reason it stopped."""


# --- simulation -------------------------------------------------------------------------------------


def _search_subjects(actor, subject_type: str, q: str) -> list:
    """Objects of the type the actor may see whose text (number and title) contains q, newest
    first; through the adapter's own search when it has one."""
    adapter = get_adapter(subject_type)
    search = getattr(adapter, "search", None)
    if search is not None:
        return list(search(actor, q, SEARCH_RESULTS))
    needle = q.casefold()
    found = []
    for subject in adapter.recent(SEARCH_WINDOW):
        if needle and needle not in subject.repr.casefold():
            continue
        if adapter.can_view(actor, subject):
            found.append(subject)
            if len(found) >= SEARCH_RESULTS:
                break
    return found


@login_required
@require_GET
def definition_simulate(request, definition_id):
    """Who would approve an object on this revision, and in what order (nothing is written)."""
    actor = request.user
    definition = _fetch(actor, definition_id)
    q = request.GET.get("q", "").replace("\x00", "").strip()[:100]
    subject_id = request.GET.get("subject", "").strip()[:64]
    error = None
    result = None
    today = None
    try:
        doc = parse_document(definition.document)
    except DocumentInvalid as exc:
        doc = Document()
        error = _domain_error(DefinitionInvalid(errors=exc.errors))
    picked_nodes = [
        n
        for n, _inside, _path in walk_nodes(doc.nodes)
        if (n.approvers if n.type == "approval" else getattr(n, "recipients", None)) is not None
        and (n.approvers if n.type == "approval" else n.recipients).source == "picked"
    ]
    picked = {n.id: request.GET.get(f"picked-{n.id}", "") for n in picked_nodes}
    status = 200
    if subject_id and error is None:
        try:
            result = services.simulate(
                actor=actor,
                subject_type=definition.subject_type,
                subject_id=subject_id,
                definition_id=definition.pk,
                picked={k: v for k, v in picked.items() if v},
            )
        except DomainError as exc:
            error, status = _domain_error(exc), exc.status
        except DocumentInvalid as exc:
            error, status = _domain_error(DefinitionInvalid(errors=exc.errors)), 422
        if result is not None:
            try:
                chosen, why = services.select_definition(definition.subject_type, result["subject"].facts)
                today = {"definition": chosen, "why": why}
            except NoApplicableFlow as exc:
                today = {"definition": None, "why": exc.detail}
            _annotate_stages(result["stages"])
    results = _search_subjects(actor, definition.subject_type, q) if (q or not subject_id) else []
    return render(
        request,
        "approvals/definitions/simulate.html",
        {
            "definition": definition,
            "q": q,
            "subject_id": subject_id,
            "results": results,
            "picked_nodes": [{"node": n, "value": picked.get(n.id, "")} for n in picked_nodes],
            "users": list(list_users(actor=actor)) if picked_nodes else [],
            "result": result,
            "today": today,
            "error": error,
        },
        status=status,
    )


_MODES = {
    "any": gettext_lazy("Any one approves"),
    "all": gettext_lazy("All must approve"),
    "sequence": gettext_lazy("One after another"),
    "quorum": gettext_lazy("Quorum"),
}


def _annotate_stages(stages: list[dict]) -> None:
    for stage in stages:
        stage["mode_label"] = str(_MODES.get(stage.get("mode") or "", "")) if stage["kind"] == "approval" else ""
        note = stage.get("note")
        stage["note_text"] = {
            "admins": _("No approver was found: the administrators decide."),
            "approve": _("No approver was found: the node is approved automatically."),
        }.get(note, "")
        if stage["kind"] == "approval" and not stage["approvers"] and not note:
            stage["note_text"] = _("No approver would be found.")


# --- dry-run ----------------------------------------------------------------------------------------


@login_required
@require_GET
def definition_dry_run(request, definition_id):
    """The last N objects routed through this revision and through the flows published today."""
    actor = request.user
    definition = _fetch(actor, definition_id)
    _deny_unless(policies.can_manage_definitions(actor))
    form = DryRunForm(request.GET if "limit" in request.GET else {"limit": 50})
    outcome, error, status = None, None, 200
    if form.is_valid():
        try:
            outcome = services.dry_run(actor=actor, definition_id=definition.pk, limit=form.cleaned_data["limit"])
        except DomainError as exc:
            error, status = _domain_error(exc), exc.status
    else:
        status = 422
    rows = outcome["rows"] if outcome else []
    return render(
        request,
        "approvals/definitions/dry_run.html",
        {
            "definition": definition,
            "form": form,
            "rows": rows,
            "problems": outcome["problems"] if outcome else [],
            "differing": sum(1 for r in rows if r["differs"]),
            "ran": outcome is not None,
            "error": error,
        },
        status=status,
    )


# --- migration --------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def definition_migrate(request, definition_id):
    """Move running approvals of this revision to the published one: a preview of where each active
    task goes (stays on its node, or the approval restarts), then the chosen ones are moved."""
    actor = request.user
    definition = _fetch(actor, definition_id)
    _deny_unless(policies.can_migrate(actor))
    targets = list(
        list_definitions(actor=actor, status=DefinitionStatus.PUBLISHED)
        .filter(key=definition.key)
        .exclude(pk=definition.pk)
    )
    wanted = request.POST.get("to") or request.GET.get("to") or (str(targets[0].pk) if targets else "")
    target = next((t for t in targets if str(t.pk) == wanted), targets[0] if targets else None)
    rows, error, status = [], None, 200
    if target is not None:
        try:
            rows = services.preview_migration(actor=actor, from_id=definition.pk, to_id=target.pk)
        except DomainError as exc:
            error, status = _domain_error(exc), exc.status
    form = MigrateForm(
        request.POST or None,
        targets=targets,
        instances=[r["instance"] for r in rows],
        initial={"to": str(target.pk) if target else "", "instances": [str(r["instance"].pk) for r in rows]},
    )
    if request.method == "POST" and target is not None and error is None:
        if form.is_valid():
            try:
                moved = services.migrate_instances(
                    actor=actor, from_id=definition.pk, to_id=target.pk, instance_ids=form.cleaned_data["instances"]
                )
            except DomainError as exc:
                if isinstance(exc, PermissionDenied):
                    raise DjangoPermissionDenied(exc.detail)
                error, status = _domain_error(exc), exc.status
            else:
                restarted = sum(1 for m in moved if m["restart"])
                messages.success(
                    request,
                    _("Moved %(count)s approval(s) to %(flow)s; %(restarted)s restarted from the beginning.")
                    % {"count": len(moved), "flow": target, "restarted": restarted},
                )
                return redirect("approvals:definition", definition_id=target.pk)
        else:
            status = 422
    for row in rows:
        row["checked"] = str(row["instance"].pk) in (form["instances"].value() or [])
    return render(
        request,
        "approvals/definitions/migrate.html",
        {"definition": definition, "targets": targets, "target": target, "rows": rows, "form": form, "error": error},
        status=status,
    )
