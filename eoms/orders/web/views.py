"""Order pages: dashboard, list with live filters, detail with its actions and files, create, edit,
and the lifecycle page. Views are thin: parse a form, fetch through selectors (what the user may not
see answers 404), call one service, render. A domain error is shown on the page, never as a 500."""

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from eoms.accounts.roles import Role
from eoms.core.errors import DomainError, PermissionDenied, ValidationFailed
from eoms.masterdata.selectors import access_project, list_projects

from .. import policies, selectors, services
from .. import state as lifecycle
from ..attachments import inspect_upload
from ..diagram import state_diagram
from ..errors import (
    AttachmentRejected,
    GuardFailed,
    InvalidTransition,
    OrderNotFound,
    OrderPermissionDenied,
    StaleOrder,
)
from ..selectors import OrderFilters
from ..state import OrderState
from .forms import AttachmentForm, OrderCreateForm, OrderEditForm, OrderFilterForm, TransitionForm

__all__ = [
    "dashboard",
    "order_list",
    "order_detail",
    "order_create",
    "order_edit",
    "order_transition",
    "order_upload",
    "attachment_download",
    "lifecycle_page",
]

PAGE_SIZE = 25
DASHBOARD_ROWS = 10
# Service field names → form field names, so a service's field error lands under its input.
FIELD_NAMES = {"parent_id": "parent", "stage_owner_id": "stage_owner", "customer": "project"}
SUBJECT_TYPE = "orders.order"  # orders as the approval engine knows them (eoms.orders.approval)
MODE_LABELS = {
    "any": _lazy("any one decides"),
    "all": _lazy("all must approve"),
    "sequence": _lazy("one after another"),
    "quorum": _lazy("a quorum decides"),
}


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def _access(actor, order_id, action: str = "view"):
    """The order if the user may see it; 404 otherwise, as if it did not exist."""
    try:
        return selectors.access_order(actor, order_id, action)
    except OrderNotFound:
        raise Http404(_("No such order."))


def _state_label(value: str) -> str:
    return str(OrderState(value).label) if value in OrderState.values else value


def _describe(exc: DomainError, order=None) -> dict:
    """A translated title and message for a domain error, with the field problems the form could
    not place."""
    number = order.number if order is not None else ""
    items: list[str] = []
    if isinstance(exc, StaleOrder):
        message = _(
            "Someone else changed order %(number)s while you were looking at it. The page now shows its current "
            "state: check it and try again."
        ) % {"number": number}
    elif isinstance(exc, InvalidTransition):
        message = _("Order %(number)s is now “%(state)s”; this action is not possible from that state.") % {
            "number": number,
            "state": _state_label(order.state) if order is not None else "",
        }
    elif isinstance(exc, GuardFailed):
        message = exc.detail  # the guard's own message, translated when it was checked
    elif isinstance(exc, AttachmentRejected):
        message = _(
            "The file was rejected. Accepted are files of these types (recognised by their content), "
            "at most %(mb)s MB: %(types)s."
        ) % {"mb": settings.ATTACHMENT_MAX_MB, "types": ", ".join(settings.ATTACHMENT_TYPES)}
    elif isinstance(exc, PermissionDenied) and exc.detail != str(exc.title):
        message = exc.detail  # the service's own sentence says why (e.g. approve through My tasks)
    elif isinstance(exc, PermissionDenied):
        message = (
            _("You may not do this on order %(number)s.") % {"number": number} if number else _("You may not do this.")
        )
    elif isinstance(exc, ValidationFailed):
        message = _("Please correct the problems below.")
        items = [e.get("message", "") for e in exc.errors]
    else:
        message = exc.detail
    return {"title": str(exc.title), "message": message, "items": items, "status": exc.status, "code": exc.code}


def _put_field_errors(form, exc: DomainError) -> bool:
    """Put a service's field errors on the form's fields; True when every error found its field."""
    placed = True
    for error in exc.errors:
        name = FIELD_NAMES.get(error.get("field", ""), error.get("field", ""))
        if name.startswith("picked."):
            name = "picked_" + name.removeprefix("picked.")
        if form is not None and name in form.fields:
            form.add_error(name, error.get("message", ""))
        else:
            placed = False
    return placed and bool(exc.errors)


def _error_page(request, *, title: str, message: str, status: int, back: str | None = None):
    return render(request, "core/error.html", {"title": title, "message": message, "back": back}, status=status)


# ---------------------------------------------------------------------------------------------- dashboard


@login_required
@require_GET
def dashboard(request):
    """My stages, what is overdue, and counts and amounts by state (with a chart)."""
    actor = request.user
    list_url = reverse("orders:list")
    counts = selectors.state_counts(actor=actor)
    by_state = [
        {
            "state": value,
            "label": str(label),
            "count": counts[value]["count"],
            "amount": counts[value]["amount"],
            "url": f"{list_url}?{urlencode({'state': value})}",
        }
        for value, label in OrderState.choices
    ]
    mine = selectors.list_orders(actor=actor, filters=OrderFilters(stage_owner=str(actor.pk), ordering="deadline"))
    overdue = selectors.overdue_orders(actor=actor)
    chart = {
        "title": _("Orders by state"),
        "labels": [row["label"] for row in by_state],
        "states": [row["state"] for row in by_state],
        "counts": [row["count"] for row in by_state],
        "url": list_url,
        "seriesName": _("Orders"),
    }
    return render(
        request,
        "orders/dashboard.html",
        {
            "by_state": by_state,
            "total_count": sum(row["count"] for row in by_state),
            "total_amount": sum((row["amount"] for row in by_state), Decimal("0.00")),
            "mine": list(mine[:DASHBOARD_ROWS]),
            "mine_count": mine.count(),
            "mine_url": f"{list_url}?{urlencode({'stage_owner': str(actor.pk), 'ordering': 'deadline'})}",
            "overdue": list(overdue[:DASHBOARD_ROWS]),
            "overdue_count": overdue.count(),
            "overdue_url": f"{list_url}?{urlencode({'overdue': 'yes', 'ordering': 'deadline'})}",
            "chart": chart,
            "can_create": _can_create_any(actor),
        },
    )


def _can_create_any(actor) -> bool:
    """Whether a "new order" button makes sense: some project in scope takes new orders from actor."""
    return any(policies.can_create_order(actor, pid) for pid in list_projects(actor=actor).values_list("id", flat=True))


# ---------------------------------------------------------------------------------------------- list


@login_required
@require_GET
def order_list(request):
    """The orders in scope, filtered; an HTMX request from the filter form gets only the table."""
    actor = request.user
    form = OrderFilterForm(request.GET or None, actor=actor)
    filters = form.to_filters() if form.is_bound else OrderFilters()
    page = Paginator(selectors.list_orders(actor=actor, filters=filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "orders": list(page.object_list),
        "query": query.urlencode(),
        "can_create": _can_create_any(actor),
    }
    template = "orders/_order_table.html" if _is_htmx(request) else "orders/order_list.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


# ---------------------------------------------------------------------------------------------- detail


def _flatten_tree(node: dict, depth: int = 0) -> list[dict]:
    rows = [{"order": node["order"], "depth": depth, "indent": depth * 1.25}]
    for child in node["children"]:
        rows.extend(_flatten_tree(child, depth + 1))
    return rows


def _submit_plan(actor, order) -> dict:
    """What submitting this order in QUOTING would do: resume its returned approval, or start the
    flow that applies (with who would approve, from approvals.services.simulate); and the nodes
    whose approver the initiator picks. `error` when no flow applies (the submit would answer 409)."""
    from eoms.approvals import engine
    from eoms.approvals import selectors as approval_selectors
    from eoms.approvals import services as approval_services
    from eoms.approvals.definition import walk_nodes
    from eoms.approvals.models import InstanceState

    plan = {"returned": None, "simulation": None, "error": None, "picked_nodes": [], "picked_initial": {}}
    instance = approval_selectors.current_instance(SUBJECT_TYPE, order.id)
    if instance is not None and instance.state == InstanceState.RETURNED:
        definition = instance.definition
        node = engine.flow_of(definition).node(instance.resume_node)
        plan["returned"] = {"instance": instance, "resume": node.name if node else instance.resume_node}
        plan["picked_initial"] = dict(instance.picked)
    else:
        try:
            simulation = approval_services.simulate(
                actor=actor, subject_type=SUBJECT_TYPE, subject_id=order.id, initiator=actor
            )
        except DomainError as exc:
            plan["error"] = _describe(exc, order)
            return plan
        for stage in simulation["stages"]:
            stage["mode_label"] = MODE_LABELS.get(stage["mode"], stage["mode"])
        plan["simulation"] = simulation
        definition = simulation["definition"]
    plan["picked_nodes"] = [
        (node.id, node.name)
        for node, _inside, _path in walk_nodes(engine.document_of(definition).nodes)
        if node.type == "approval" and node.approvers.source == "picked"
    ]
    return plan


def _approval_card(actor, order) -> dict | None:
    """The order's current (else latest) approval: its steps with their approvers, the user's own
    pending task (a "Decide" link), withdraw and nudge when allowed, and its timeline."""
    from eoms.approvals import policies as approval_policies
    from eoms.approvals import selectors as approval_selectors
    from eoms.approvals.models import StepState, TaskState

    instance = approval_selectors.current_instance(SUBJECT_TYPE, order.id)
    if instance is None:
        instance = approval_selectors.instances_of(SUBJECT_TYPE, order.id).first()
    if instance is None:
        return None
    tasks = list(instance.tasks.select_related("assignee", "on_behalf_of").order_by("created_at"))
    steps = []
    for step in instance.steps.filter(kind__in=["approval", "cc"]).order_by("id"):
        step.task_rows = [t for t in tasks if t.step_id == step.pk]
        step.state_label = StepState(step.state).label if step.state in StepState.values else step.state
        steps.append(step)
    pending = [t for t in tasks if t.state == TaskState.PENDING]
    mine = next((t for t in pending if t.assignee_id == actor.pk), None)
    return {
        "instance": instance,
        "steps": steps,
        "pending": pending,
        "my_task": mine if instance.state == "running" else None,
        "can_withdraw": approval_policies.can_withdraw(actor, instance),
        "can_nudge": approval_policies.can_nudge(actor, instance) and bool(pending),
        "timeline": list(reversed(list(approval_selectors.instance_timeline(instance)))),
    }


def _detail_context(request, order, *, forms: dict | None = None, upload_form=None, error=None) -> dict:
    actor = request.user
    forms = forms or {}
    actions = []
    transitions = policies.available_transitions(actor, order)
    plan = _submit_plan(actor, order) if any(t.name == "submit" for t in transitions) else None
    for t in transitions:
        extra = {}
        if t.name == "submit" and plan:
            extra = {"picked_nodes": plan["picked_nodes"], "picked_initial": plan["picked_initial"], "actor": actor}
        form = forms.get(t.name) or TransitionForm(transition=t, order=order, **extra)
        actions.append(
            {
                "transition": t,
                "form": form,
                "open": t.name in forms,
                "guards": [str(g.description) for g in t.guards],
                "target_label": _state_label(t.target),
            }
        )
    timeline = selectors.order_timeline(order)
    for entry in timeline:
        t = lifecycle.BY_NAME.get(entry.transition)
        entry.label = str(t.label) if t else (_("Created") if entry.transition == "create" else entry.transition)
        entry.from_label = _state_label(entry.from_state) if entry.from_state else ""
        entry.to_label = _state_label(entry.to_state)
    history_names = {h.id: h.label for h in timeline}
    attachments = list(order.attachments.select_related("uploaded_by"))
    for a in attachments:
        a.transition_label = history_names.get(a.history_id, "")
    tree = selectors.order_tree(actor, order)
    can_subcontract = (
        policies.can_create_order(actor, order.project_id)
        and order.level < services.MAX_LEVEL
        and order.state not in OrderState.terminal()
    )
    return {
        "order": order,
        "state_label": _state_label(order.state),
        "actions": actions,
        "timeline": list(reversed(timeline)),
        "attachments": attachments,
        "tree": _flatten_tree(tree) if tree["children"] else [],
        "children_total": sum((n["order"].contract_amount for n in tree["children"]), Decimal("0.00")),
        "can_edit": policies.can_update_order(actor, order),
        "can_upload": policies.can_upload_attachment(actor, order),
        "can_subcontract": can_subcontract,
        "upload_form": upload_form or AttachmentForm(),
        "diagram": mark_safe(state_diagram(order.state)),  # noqa: S308 (every text in it is escaped)  # nosec B308 B703
        "error": _describe(error, order) if error else None,
        "submit_plan": plan,
        "approval": _approval_card(actor, order),
    }


def _render_detail(request, order, *, status: int = 200, **kwargs):
    return render(request, "orders/order_detail.html", _detail_context(request, order, **kwargs), status=status)


@login_required
@require_GET
def order_detail(request, order_id):
    return _render_detail(request, _access(request.user, order_id))


@login_required
@require_POST
def order_transition(request, order_id, name):
    """Take one transition from the order page: the version shown, a comment, optionally a file."""
    actor = request.user
    order = _access(actor, order_id)
    transition = lifecycle.BY_NAME.get(name)
    if transition is None:
        raise Http404(_("No such action."))
    if not policies.can_take_transition(actor, order, transition):
        if order.state not in transition.sources:
            error = InvalidTransition()
        elif transition.system:
            error = OrderPermissionDenied(
                _("Orders are approved or rejected through their approval flow: decide the task in My tasks.")
            )
        else:
            error = PermissionDenied()
        return _render_detail(request, order, error=error, status=error.status)
    extra = {}
    if name == "submit":
        plan = _submit_plan(actor, order)
        extra = {"picked_nodes": plan["picked_nodes"], "picked_initial": plan["picked_initial"], "actor": actor}
    form = TransitionForm(request.POST, request.FILES, transition=transition, order=order, **extra)
    if not form.is_valid():
        return _render_detail(request, order, forms={name: form}, status=422)
    data = form.cleaned_data
    try:
        attachments = []
        if data.get("file"):
            upload = data["file"]
            attachments = [(data["kind"], inspect_upload(upload.name, upload))]
        services.transition_order(
            actor=actor,
            order_id=order.id,
            name=name,
            comment=data["comment"],
            expected_version=data["version"],
            attachments=attachments,
            picked=form.picked() or None,
        )
    except DomainError as exc:
        current = _access(actor, order_id)
        if isinstance(exc, StaleOrder | InvalidTransition):
            forms = {}  # show the order as it is now, with fresh forms at its current version
        else:
            if isinstance(exc, AttachmentRejected):
                form.add_error("file", _describe(exc)["message"])
            else:
                _put_field_errors(form, exc)
            forms = {name: form}
        return _render_detail(request, current, forms=forms, error=exc, status=exc.status)
    messages.success(
        request,
        _("%(action)s: order %(number)s is now “%(state)s”.")
        % {"action": transition.label, "number": order.number, "state": _state_label(transition.target)},
    )
    return redirect("orders:detail", order_id=order.id)


@login_required
@require_POST
def order_upload(request, order_id):
    """Add a file to the order (services.attach_file); its type is recognised from its content."""
    actor = request.user
    order = _access(actor, order_id)
    if not policies.can_upload_attachment(actor, order):
        return _render_detail(request, order, error=PermissionDenied(), status=403)
    form = AttachmentForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_detail(request, order, upload_form=form, status=422)
    upload = form.cleaned_data["file"]
    try:
        checked = inspect_upload(upload.name, upload)
        attachment = services.attach_file(
            actor=actor, order_id=order.id, kind=form.cleaned_data["kind"], upload=checked
        )
    except DomainError as exc:
        if isinstance(exc, AttachmentRejected):
            form.add_error("file", _describe(exc)["message"])
        return _render_detail(request, _access(actor, order_id), upload_form=form, error=exc, status=exc.status)
    messages.success(request, _("File %(name)s added.") % {"name": attachment.original_name})
    return redirect("orders:detail", order_id=order.id)


@login_required
@require_GET
def attachment_download(request, order_id, attachment_id):
    """Stream a file of an order the user may see; always as a download, never sniffed or inlined."""
    order = _access(request.user, order_id)
    attachment = order.attachments.filter(pk=attachment_id).first()
    if attachment is None:
        raise Http404(_("No such file on this order."))
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404(_("The file is missing from storage."))
    response = FileResponse(
        handle, as_attachment=True, filename=attachment.original_name, content_type=attachment.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# ---------------------------------------------------------------------------------------------- create, edit


@login_required
@require_http_methods(["GET", "POST"])
def order_create(request):
    """Open an order (立项); "?parent=<id>" pre-fills a subcontract of that order."""
    actor = request.user
    initial = {}
    parent = None
    parent_id = request.GET.get("parent")
    if parent_id:
        parent = _access(actor, parent_id)
        initial = {
            "parent": parent.number,
            "project": str(parent.project_id),
            "kind": parent.kind,
            "tax_rate": f"{parent.tax_rate:.2f}",
        }
    form = OrderCreateForm(request.POST or None, actor=actor, initial=initial)
    if len(form.fields["project"].choices) <= 1:
        return _error_page(
            request,
            title=_("Permission denied"),
            message=_("You may not create orders on any project."),
            status=403,
            back=reverse("orders:list"),
        )
    error, status = None, 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            data = form.cleaned_data
            try:
                project = access_project(actor, data["project"])
                order = services.create_order(
                    actor=actor,
                    project=project,
                    title=data["title"],
                    contract_amount=data["contract_amount"],
                    estimated_cost=data.get("estimated_cost"),
                    kind=data["kind"],
                    tax_rate=data["tax_rate"],
                    description=data["description"],
                    parent_id=form.parent_order.id if form.parent_order else None,
                )
            except DomainError as exc:
                if not _put_field_errors(form, exc):
                    error = _describe(exc)
                status = exc.status
            else:
                messages.success(request, _("Order %(number)s created.") % {"number": order.number})
                return redirect("orders:detail", order_id=order.id)
    return render(
        request,
        "orders/order_form.html",
        {"form": form, "parent": parent, "error": error, "creating": True},
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def order_edit(request, order_id):
    """Change the fields the order's state lets this user change; with the version shown."""
    actor = request.user
    order = _access(actor, order_id)
    if not policies.can_update_order(actor, order):
        return _error_page(
            request,
            title=_("Permission denied"),
            message=_("You may not edit order %(number)s in its current state.") % {"number": order.number},
            status=403,
            back=reverse("orders:detail", kwargs={"order_id": order.id}),
        )
    form = OrderEditForm(request.POST or None, actor=actor, order=order)
    error, status = None, 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            changes = form.changes()
            if not changes:
                messages.info(request, _("Nothing was changed."))
                return redirect("orders:detail", order_id=order.id)
            try:
                services.update_order(
                    actor=actor, order_id=order.id, changes=changes, expected_version=form.cleaned_data["version"]
                )
            except DomainError as exc:
                if not _put_field_errors(form, exc):
                    error = _describe(exc, order)
                status = exc.status
            else:
                messages.success(request, _("Order %(number)s saved.") % {"number": order.number})
                return redirect("orders:detail", order_id=order.id)
    return render(
        request,
        "orders/order_form.html",
        {"form": form, "order": order, "error": error, "creating": False},
        status=status,
    )


# ---------------------------------------------------------------------------------------------- lifecycle


def _role_label(role: str) -> str:
    return str(Role(role).label) if role in Role.values else role


@login_required
@require_GET
def lifecycle_page(request):
    """The state diagram and the table of transitions, both derived from orders.state.TRANSITIONS."""
    rows = []
    for t in lifecycle.TRANSITIONS:
        groups: dict[frozenset, list[str]] = {}
        for source in t.sources:
            groups.setdefault(frozenset(t.allowed_roles(source)), []).append(source)
        rows.append(
            {
                "name": t.name,
                "label": str(t.label),
                "sources": [(s, _state_label(s)) for s in t.sources],
                "target": (t.target, _state_label(t.target)),
                "role_groups": [
                    {
                        "sources": [_state_label(s) for s in sources],
                        "roles": sorted(_role_label(r) for r in roles),
                    }
                    for roles, sources in groups.items()
                ],
                "guards": [{"code": g.code, "description": str(g.description)} for g in t.guards],
                "comment_required": t.comment_required,
            }
        )
    return render(
        request,
        "orders/lifecycle.html",
        {"rows": rows, "diagram": mark_safe(state_diagram())},  # noqa: S308 (every text in it is escaped)  # nosec B308 B703
    )
