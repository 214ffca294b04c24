"""The approver's pages: "My tasks" (pending, done, CC'd, delegated; filters; bulk approve and
reject with a result per task), the task page (the object, its budget and history, why the task
came to this user, the route, the timeline, and the actions), files of the timeline, withdraw and
nudge (posted from the object's page), and delegations.

Views are thin: parse a form, read through selectors (what the user may not see answers 404),
call one service, render. A domain error is shown on the page, translated, never as a 500."""

from collections import defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from eoms.accounts import selectors as account_selectors
from eoms.accounts import services as account_services
from eoms.accounts.roles import Role
from eoms.core.errors import DomainError
from eoms.core.ids import valid_uuids
from eoms.core.uploads import inspect_upload

from .. import engine, policies, selectors, services
from ..definition import walk_nodes
from ..errors import ApprovalPermissionDenied, InstanceNotFound, TaskNotFound, TaskNotPending
from ..models import StepState, TaskKind, TaskState
from ..selectors import TaskFilters
from ..subjects import get_adapter
from .inbox_forms import (
    BOXES,
    AddSignerForm,
    ApproveForm,
    BulkDecisionForm,
    CommentForm,
    DelegationForm,
    RejectForm,
    TaskFilterForm,
    TransferForm,
    WithdrawForm,
)

__all__ = [
    "inbox",
    "bulk_decide",
    "task_page",
    "task_action",
    "comment",
    "attachment_download",
    "withdraw",
    "nudge",
    "delegations",
    "delegation_end",
]

PAGE_SIZE = 20
# URL slug → the key of its form (templates cannot read a key with a hyphen).
TASK_ACTIONS = {"approve": "approve", "reject": "reject", "transfer": "transfer", "add-signer": "signer"}
STEP_LABELS = {
    StepState.ACTIVE: _lazy("In progress"),
    StepState.APPROVED: _lazy("Approved"),
    StepState.REJECTED: _lazy("Rejected"),
    StepState.SKIPPED: _lazy("Skipped"),
    StepState.CANCELLED: _lazy("Cancelled"),
    StepState.PASSED: _lazy("Passed"),
}


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def _describe(exc: DomainError) -> dict:
    """A translated title and message for a domain error, with the field problems."""
    return {
        "title": str(exc.title),
        "message": exc.detail,
        "items": [e.get("message", "") for e in exc.errors],
        "status": exc.status,
        "code": exc.code,
    }


def _put_field_errors(form, exc: DomainError, names: dict | None = None) -> None:
    """Put a service's field errors on the form's fields ("comment", "changes.title" →
    edit_title, "to_user", "user", "file"…); the rest stay in the page's error box."""
    names = names or {}
    for error in exc.errors:
        field = error.get("field", "")
        name = names.get(field, field)
        if field.startswith("changes."):
            name = "edit_" + field.removeprefix("changes.")
        if form is not None and name in form.fields:
            form.add_error(name, error.get("message", ""))


def _task_or_404(actor, task_id):
    try:
        return selectors.access_task(actor, task_id)
    except TaskNotFound:
        raise Http404(_("No such approval task."))


def _instance_or_404(actor, instance_id):
    try:
        return selectors.access_instance(actor, instance_id)
    except InstanceNotFound:
        raise Http404(_("No such approval."))


def _subject(instance):
    """The object under approval, or None when it is gone."""
    try:
        return get_adapter(instance.subject_type).load(instance.subject_id)
    except (DomainError, LookupError):
        return None


def _uploads(form) -> list:
    upload = form.cleaned_data.get("file")
    return [inspect_upload(upload.name, upload)] if upload else []


# ---------------------------------------------------------------------------------------------- inbox


def _rows(tasks) -> list[dict]:
    """Table rows for the page's tasks; the object of each is loaded once (its amount is a fact)."""
    now = timezone.now()
    tasks = list(tasks)
    by_type: dict[str, set] = defaultdict(set)
    for task in tasks:
        by_type[task.instance.subject_type].add(task.instance.subject_id)
    subjects: dict = {}
    for subject_type, ids in by_type.items():
        adapter = get_adapter(subject_type)
        if hasattr(adapter, "load_many"):  # one query for the page
            subjects.update({(subject_type, i): s for i, s in adapter.load_many(ids).items()})
    rows = []
    for task in tasks:
        instance = task.instance
        key = (instance.subject_type, instance.subject_id)
        if key not in subjects:
            subjects[key] = _subject(instance)
        subject = subjects[key]
        due = task.step.due_at
        rows.append(
            {
                "task": task,
                "instance": instance,
                "subject_url": subject.url if subject else "",
                "amount": subject.facts.get("amount") if subject else None,
                "due": due,
                "overdue": bool(due and due < now and task.state == TaskState.PENDING),
                "selectable": task.state == TaskState.PENDING and instance.state == "running",
            }
        )
    return rows


def _render_inbox(request, *, status: int = 200, bulk_form=None, results=None, error=None):
    actor = request.user
    form = TaskFilterForm(request.GET or None)
    values = form.values() if form.is_bound else {"box": "pending", "q": "", "overdue": False}
    counts = selectors.task_counts(actor=actor)
    tasks = selectors.list_tasks(
        actor=actor, filters=TaskFilters(box=values["box"], q=values["q"], overdue=values["overdue"] or None)
    )
    page = Paginator(tasks, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    tab_query = query.copy()
    tab_query.pop("box", None)
    tabs = []
    for box, label in BOXES:
        tab_query["box"] = box
        tabs.append(
            {
                "box": box,
                "label": label,
                "count": counts[box],
                "active": box == values["box"],
                "query": tab_query.urlencode(),
            }
        )
    context = {
        "form": form,
        "box": values["box"],
        "tabs": tabs,
        "counts": counts,
        "page": page,
        "rows": _rows(page.object_list),
        "query": query.urlencode(),
        "bulk_form": bulk_form or BulkDecisionForm(),
        "results": results,
        "results_failed": sum(1 for r in results or () if not r["ok"]),
        "error": error,
    }
    template = "approvals/inbox/_results.html" if _is_htmx(request) else "approvals/inbox/inbox.html"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_GET
def inbox(request):
    """The user's tasks in one box, filtered; an HTMX request from the filters gets the table only."""
    return _render_inbox(request)


@login_required
@require_POST
def bulk_decide(request):
    """Approve or reject the ticked tasks; each is decided on its own and reported on its own."""
    actor = request.user
    posted = request.POST.getlist("tasks")
    form = BulkDecisionForm(request.POST, task_ids=posted)
    if not form.is_valid():
        return _render_inbox(request, status=422, bulk_form=form)
    data = form.cleaned_data
    ids = list(dict.fromkeys(data["tasks"]))
    valid = valid_uuids(ids)
    # Labels from the user's own pending tasks, read before deciding them.
    labels = {
        str(t.pk): f"{t.instance.subject_repr} · {t.step.node_name}"
        for t in selectors.list_tasks(actor=actor, filters=TaskFilters(box="pending")).filter(pk__in=valid)
    }
    results = []
    if valid:
        try:
            results = services.bulk_decide(
                actor=actor, task_ids=valid, decision=data["decision"], comment=data["comment"]
            )
        except DomainError as exc:
            _put_field_errors(form, exc)
            return _render_inbox(request, status=exc.status, bulk_form=form, error=_describe(exc))
    # A malformed id is not a task: it fails alone, as a missing task does in the service.
    results += [
        {"task_id": i, "ok": False, "code": TaskNotFound.code, "detail": _("No such approval task.")}
        for i in ids
        if i not in valid
    ]
    for result in results:
        result["label"] = labels.get(result["task_id"]) or _("Task %(id)s") % {"id": result["task_id"][:8]}
    done = sum(1 for r in results if r["ok"])
    if done:
        text = (
            _("Approved %(done)s of %(total)s tasks.")
            if data["decision"] == "approve"
            else _("Rejected %(done)s of %(total)s tasks.")
        )
        messages.success(request, text % {"done": done, "total": len(results)})
    return _render_inbox(request, results=results)


# ---------------------------------------------------------------------------------------------- task page


def _route(instance, flow, subject, steps, tasks_by_step, current_node: str) -> list[dict]:
    """The stages of the flow for this object, in order, each with what happened there so far
    (the latest visit) or who would decide it next."""
    fields = {f.name: f for f in get_adapter(instance.subject_type).fields()}
    try:
        plan = engine.plan_route(
            flow,
            subject=subject,
            initiator=instance.initiator,
            picked=instance.picked,
            fields=fields,
            on=timezone.localdate(),
        )
    except DomainError:
        plan = []
    latest = {s.node_id: s for s in steps if s.kind in ("approval", "cc")}
    route = []
    seen = set()
    for stage in plan:
        step = latest.get(stage["node_id"])
        seen.add(stage["node_id"])
        route.append(_stage(stage["node_id"], stage["name"], stage["kind"], step, tasks_by_step, stage, current_node))
    # A node visited but no longer on the planned way (the object changed since) is still shown.
    for step in steps:
        if step.kind in ("approval", "cc") and step.node_id not in seen:
            seen.add(step.node_id)
            route.insert(
                0, _stage(step.node_id, step.node_name, step.kind, latest[step.node_id], tasks_by_step, None, "")
            )
    return route


def _stage(node_id, name, kind, step, tasks_by_step, planned, current_node) -> dict:
    if step is not None:
        people = [
            {"user": t.assignee, "state": t.get_state_display(), "on_behalf_of": t.on_behalf_of, "reason": t.reason}
            for t in tasks_by_step.get(step.pk, [])
        ]
        status, label = step.state, STEP_LABELS.get(step.state, step.state)
    else:
        people = [
            {"user": a["user"], "state": "", "on_behalf_of": a["on_behalf_of"], "reason": a["reason"]}
            for a in (planned or {}).get("approvers", [])
        ]
        status, label = "upcoming", _("Next")
    return {
        "node_id": node_id,
        "name": name,
        "kind": kind,
        "status": status,
        "status_label": label,
        "people": people,
        "reason": (step.reason if step is not None else (planned or {}).get("reason", "")),
        "current": node_id == current_node,
        "mode": (planned or {}).get("mode") or (step.mode if step is not None else ""),
    }


def _diagram(instance, active: set[str]):
    """The flow's drawing with the active nodes marked, when the diagram module is there."""
    try:
        from ..diagram import flow_svg
    except ImportError:
        return None
    doc = engine.document_of(instance.definition)
    ids = set()
    for node, _inside, _path in walk_nodes(doc.nodes):
        source = node.approvers if node.type == "approval" else getattr(node, "recipients", None)
        if source is not None and source.source == "users":
            ids.update(valid_uuids(source.users))
    names = {str(u.pk): str(u) for u in account_selectors.list_users(actor=None).filter(pk__in=ids)} if ids else {}
    fields = {f.name: f for f in get_adapter(instance.subject_type).fields()}
    try:
        svg = flow_svg(doc, problems_nodes=set(), active_nodes=active, fields=fields, user_names=names)
    except Exception:  # noqa: BLE001 (a drawing problem must not take the task page down)
        return None
    return mark_safe(svg)  # noqa: S308 (flow_svg escapes every text it draws)  # nosec B308 B703


def _return_choices(instance, step, steps) -> list[tuple[str, str]]:
    """Where a rejection may send it back (engine.return_targets), as form choices."""
    return [
        (node_id, _("Return to “%(node)s”") % {"node": name})
        for node_id, name in engine.return_targets(instance, step, steps)
    ]


def _task_forms(actor, task, instance, node, subject, flow, steps, data=None, files=None, action=""):
    """The action forms of a pending task; the posted one is bound to the request."""
    adapter = get_adapter(instance.subject_type)
    allowed = set(getattr(node, "editable_fields", []) or [])
    editable = [spec for spec in adapter.editable_fields() if spec.name in allowed]
    exclude = [actor.pk, instance.initiator_id]

    def bound(name):
        return (data, files) if action == name else (None, None)

    return {
        "approve": ApproveForm(*bound("approve"), editable=editable, obj=subject.obj if subject else None),
        "reject": RejectForm(
            *bound("reject"),
            comment_required=getattr(node, "comment_required_on_reject", True),
            return_choices=_return_choices(instance, task.step, steps),
        ),
        "transfer": TransferForm(*bound("transfer"), actor=actor, exclude=exclude),
        "signer": AddSignerForm(*bound("signer"), actor=actor, exclude=exclude),
    }


def _task_context(request, task, *, forms=None, comment_form=None, error=None, open_action: str = "") -> dict:
    actor = request.user
    instance = task.instance
    subject = _subject(instance)
    flow = engine.flow_of(instance.definition)
    node = flow.node(task.step.node_id)
    steps = list(instance.steps.all())
    tasks = list(instance.tasks.select_related("assignee", "on_behalf_of").order_by("created_at"))
    tasks_by_step = defaultdict(list)
    for t in tasks:
        tasks_by_step[t.step_id].append(t)
    active = {s.node_id for s in steps if s.state == StepState.ACTIVE and s.kind == "approval"}
    can_decide = policies.can_decide_task(actor, task)
    if can_decide and forms is None:
        forms = _task_forms(actor, task, instance, node, subject, flow, steps)
    timeline = list(selectors.instance_timeline(instance))
    submitted = next((a for a in timeline if a.kind == "submit"), None)
    context = {
        "task": task,
        "instance": instance,
        "subject": subject,
        "node": node,
        "flow_why": (submitted.detail or {}).get("why", "") if submitted else "",
        "can_decide": can_decide,
        "forms": forms or {},
        "open_action": open_action,
        "can_comment": policies.can_comment(actor, instance),
        "comment_form": comment_form or CommentForm(),
        "comment_url": reverse("approvals:comment", args=[instance.pk]),
        "route": _route(instance, flow, subject, steps, tasks_by_step, task.step.node_id) if subject else [],
        "diagram": _diagram(instance, active),
        "timeline": list(reversed(timeline)),
        "error": error,
        "overdue": bool(task.step.due_at and task.step.due_at < timezone.now() and task.state == TaskState.PENDING),
    }
    if subject is not None:
        # What the object shows on the task page (an order: its budget and history) comes from its
        # context, through the subject adapter: approvals knows no business context.
        page_context = getattr(get_adapter(instance.subject_type), "page_context", None)
        context.update(page_context(subject) if page_context else {})
    return context


def _render_task(request, task, *, status: int = 200, **kwargs):
    return render(request, "approvals/tasks/task.html", _task_context(request, task, **kwargs), status=status)


@login_required
@require_GET
def task_page(request, task_id):
    task = _task_or_404(request.user, task_id)
    if task.kind == TaskKind.CC and task.state == TaskState.CC and task.assignee_id == request.user.pk:
        # Opening a copy sent to you is reading it (the initiator sees who has).
        task = services.read_cc(actor=request.user, task_id=task.pk)
    return _render_task(request, task)


@login_required
@require_POST
def task_action(request, task_id, action):
    """Approve, reject (end or return), transfer or add a signer to one of the user's tasks."""
    actor = request.user
    if action not in TASK_ACTIONS:
        raise Http404(_("No such action."))
    action = TASK_ACTIONS[action]
    task = _task_or_404(actor, task_id)
    if not policies.can_decide_task(actor, task):
        # Seen but not decidable by this user: say why, as the service would, and change nothing.
        if task.assignee_id != actor.pk:
            exc = ApprovalPermissionDenied(_("This task is %(user)s's, not yours.") % {"user": task.assignee})
        elif task.state != TaskState.PENDING or task.instance.state != "running":
            exc = TaskNotPending(
                _("This task is already %(state)s; nothing was changed.") % {"state": task.get_state_display()}
            )
        else:
            exc = ApprovalPermissionDenied(_("You may not do this."))
        return _render_task(request, task, error=_describe(exc), status=exc.status)
    instance = task.instance
    subject = _subject(instance)
    flow = engine.flow_of(instance.definition)
    node = flow.node(task.step.node_id)
    steps = list(instance.steps.all())
    forms = _task_forms(actor, task, instance, node, subject, flow, steps, request.POST, request.FILES, action)
    form = forms[action]
    if not form.is_valid():
        return _render_task(request, task, forms=forms, open_action=action, status=422)
    data = form.cleaned_data
    name = instance.subject_repr
    try:
        if action == "approve":
            services.decide_task(
                actor=actor,
                task_id=task.pk,
                decision="approve",
                comment=data["comment"].strip(),
                changes=form.changes() or None,
                attachments=_uploads(form),
            )
            text = _("You approved %(subject)s.") % {"subject": name}
        elif action == "reject":
            return_to = data["return_to"] or None
            services.decide_task(
                actor=actor,
                task_id=task.pk,
                decision="reject",
                comment=data["comment"].strip(),
                return_to=return_to,
                attachments=_uploads(form),
            )
            if return_to == "initiator":
                text = _("You returned %(subject)s to the initiator for revision.") % {"subject": name}
            elif return_to:
                target = flow.node(return_to)
                text = _("You returned %(subject)s to “%(node)s”.") % {
                    "subject": name,
                    "node": target.name if target else return_to,
                }
            else:
                text = _("You rejected %(subject)s.") % {"subject": name}
        elif action == "transfer":
            services.transfer_task(actor=actor, task_id=task.pk, to_user=data["to_user"], comment=data["comment"])
            text = _("%(subject)s was transferred to %(user)s.") % {"subject": name, "user": data["to_user"]}
        else:
            services.add_signer(
                actor=actor, task_id=task.pk, user=data["user"], position=data["position"], comment=data["comment"]
            )
            text = _("%(user)s was added as a signer of %(subject)s.") % {"user": data["user"], "subject": name}
    except DomainError as exc:
        _put_field_errors(form, exc, {"to_user": "to_user", "user": "user"})
        fresh = _task_or_404(actor, task_id)
        if fresh.state != TaskState.PENDING:
            forms = None  # nothing left to decide: show the task as it is now
        return _render_task(request, fresh, forms=forms, open_action=action, error=_describe(exc), status=exc.status)
    messages.success(request, text)
    if action == "signer" and data["position"] != "before":
        return redirect("approvals:task", task_id=task.pk)  # the user still decides this task
    return redirect("approvals:inbox")


@login_required
@require_POST
def comment(request, instance_id):
    """A comment with files on an approval, from its task page (back to the task given in `task`)."""
    actor = request.user
    instance = _instance_or_404(actor, instance_id)
    form = CommentForm(request.POST, request.FILES)
    task = None
    if request.POST.get("task"):
        task = _task_or_404(actor, request.POST["task"])
        if task.instance_id != instance.pk:
            raise Http404(_("No such approval task."))
    back = reverse("approvals:task", args=[task.pk]) if task else _subject_url(instance)
    if form.is_valid():
        try:
            services.comment_approval(
                actor=actor, instance_id=instance.pk, comment=form.cleaned_data["comment"], attachments=_uploads(form)
            )
        except DomainError as exc:
            _put_field_errors(form, exc)
            if task is None:
                messages.error(request, _describe(exc)["message"])
                return redirect(back)
            return _render_task(request, task, comment_form=form, error=_describe(exc), status=exc.status)
        messages.success(request, _("Your comment was added."))
        return redirect(back)
    if task is None:
        messages.error(request, "; ".join(e for errors in form.errors.values() for e in errors))
        return redirect(back)
    return _render_task(request, task, comment_form=form, status=422)


def _subject_url(instance) -> str:
    subject = _subject(instance)
    return subject.url if subject and subject.url else reverse("approvals:inbox")


@login_required
@require_GET
def attachment_download(request, instance_id, attachment_id):
    """A file given with an action, for who may see the approval; always a download."""
    instance = _instance_or_404(request.user, instance_id)
    found = None
    for action in selectors.instance_timeline(instance):
        for attachment in action.attachments.all():
            if str(attachment.pk) == str(attachment_id):
                found = attachment
    if found is None:
        raise Http404(_("No such file on this approval."))
    try:
        handle = found.file.open("rb")
    except FileNotFoundError:
        raise Http404(_("The file is missing from storage."))
    response = FileResponse(handle, as_attachment=True, filename=found.original_name, content_type=found.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# ---------------------------------------------------------------------------------------------- withdraw, nudge


def _back(request, instance) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return _subject_url(instance)


@login_required
@require_POST
def withdraw(request, instance_id):
    """The initiator takes the request back before any decision (from the object's page)."""
    actor = request.user
    instance = _instance_or_404(actor, instance_id)
    form = WithdrawForm(request.POST)
    form.is_valid()
    try:
        services.withdraw_approval(actor=actor, instance_id=instance.pk, comment=form.cleaned_data.get("comment", ""))
    except DomainError as exc:
        messages.error(request, _describe(exc)["message"])
    else:
        messages.success(request, _("You withdrew %(subject)s from approval.") % {"subject": instance.subject_repr})
    return redirect(_back(request, instance))


@login_required
@require_POST
def nudge(request, instance_id):
    """Remind the pending approvers (at most once an hour each)."""
    actor = request.user
    instance = _instance_or_404(actor, instance_id)
    try:
        nudged = services.nudge_approval(actor=actor, instance_id=instance.pk)
    except DomainError as exc:
        messages.error(request, _describe(exc)["message"])
    else:
        messages.success(request, _("Reminded: %(users)s.") % {"users": ", ".join(str(t.assignee) for t in nudged)})
    return redirect(_back(request, instance))


# ---------------------------------------------------------------------------------------------- delegations


@login_required
@require_http_methods(["GET", "POST"])
def delegations(request):
    """The user's delegations (as the absent user and as the deputy; an admin sees everyone's),
    and a form to name a deputy for a period (an admin may name one for anyone)."""
    actor = request.user
    for_anyone = account_selectors.has_role(actor, Role.ADMIN)
    form = DelegationForm(request.POST or None, actor=actor, for_anyone=for_anyone)
    error, status = None, 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            data = form.cleaned_data
            try:
                account_services.set_delegation(
                    actor=actor,
                    user=data.get("user") or actor,
                    deputy=data["deputy"],
                    starts_on=data["starts_on"],
                    ends_on=data["ends_on"],
                    reason=data["reason"],
                )
            except DomainError as exc:
                _put_field_errors(form, exc)
                error, status = _describe(exc), exc.status
            else:
                messages.success(
                    request,
                    _("%(deputy)s decides for %(user)s from %(start)s until %(end)s.")
                    % {
                        "deputy": data["deputy"],
                        "user": data.get("user") or actor,
                        "start": data["starts_on"].isoformat(),
                        "end": data["ends_on"].isoformat(),
                    },
                )
                return redirect("approvals:delegations")
    rows = list(account_selectors.list_delegations(actor=actor))
    today = timezone.localdate()
    for d in rows:
        d.is_current = d.starts_on <= today <= d.ends_on
        d.can_end = d.user_id == actor.pk or for_anyone
    return render(
        request,
        "approvals/inbox/delegations.html",
        {
            "form": form,
            "mine": [d for d in rows if d.user_id == actor.pk],
            "for_me": [d for d in rows if d.deputy_id == actor.pk],
            "others": [d for d in rows if for_anyone and actor.pk not in (d.user_id, d.deputy_id)],
            "for_anyone": for_anyone,
            "error": error,
        },
        status=status,
    )


@login_required
@require_POST
def delegation_end(request, delegation_id):
    try:
        account_services.end_delegation(actor=request.user, delegation_id=delegation_id)
    except DomainError as exc:
        messages.error(request, _describe(exc)["message"])
    else:
        messages.success(request, _("The delegation was ended."))
    return redirect("approvals:delegations")
