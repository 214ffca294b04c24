"""The audit browser: administrators and auditors read the audit chain, filter it and verify it.

Everyone else gets 403. The chain is read-only here; verifying it only reads."""

import json
from datetime import datetime, time, timedelta

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from eoms.accounts.roles import Role
from eoms.accounts.selectors import has_role

from .audit import verify_chain
from .models import AuditEntry

__all__ = ["audit_log", "audit_verify", "AuditFilterForm", "list_audit_entries"]

PAGE_SIZE = 50
AUDIT_ROLES = (Role.ADMIN, Role.AUDITOR)

_TEXT = {"class": "form-control"}
_SELECT = {"class": "form-select"}


class AuditFilterForm(forms.Form):
    actor = forms.CharField(
        label=gettext_lazy("Actor"),
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={**_TEXT, "placeholder": gettext_lazy("Username")}),
    )
    action = forms.ChoiceField(label=gettext_lazy("Action"), required=False, widget=forms.Select(attrs=_SELECT))
    object_type = forms.ChoiceField(
        label=gettext_lazy("Object type"), required=False, widget=forms.Select(attrs=_SELECT)
    )
    object_id = forms.CharField(
        label=gettext_lazy("Object id"), required=False, max_length=64, widget=forms.TextInput(attrs=_TEXT)
    )
    date_from = forms.DateField(
        label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={**_TEXT, "type": "date"})
    )
    date_to = forms.DateField(
        label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={**_TEXT, "type": "date"})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        entries = AuditEntry.objects.order_by()
        actions = sorted(entries.values_list("action", flat=True).distinct())
        types = sorted(entries.values_list("object_type", flat=True).distinct())
        self.fields["action"].choices = [("", _("All actions")), *((a, a) for a in actions)]
        self.fields["object_type"].choices = [("", _("All object types")), *((t, t) for t in types)]
        for name in self.errors if self.is_bound else ():
            widget = self.fields[name].widget if name in self.fields else None
            if widget is not None:
                widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", _("Must not be before the start date."))
        return data


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def list_audit_entries(*, actor, filters: dict) -> QuerySet[AuditEntry]:
    """Audit entries, newest first (by id: the order of writing; an entry gets its seq when it is
    sealed, shortly after), for an administrator or auditor; PermissionDenied for others."""
    if not has_role(actor, *AUDIT_ROLES):
        raise PermissionDenied
    qs = AuditEntry.objects.order_by("-id")
    if filters.get("actor"):
        qs = qs.filter(actor_repr__icontains=filters["actor"].strip())
    if filters.get("action"):
        qs = qs.filter(action=filters["action"])
    if filters.get("object_type"):
        qs = qs.filter(object_type=filters["object_type"])
    if filters.get("object_id"):
        qs = qs.filter(object_id=filters["object_id"].strip())
    if filters.get("date_from"):
        qs = qs.filter(at__gte=_day_start(filters["date_from"]))
    if filters.get("date_to"):
        qs = qs.filter(at__lt=_day_start(filters["date_to"]) + timedelta(days=1))
    return qs


def _show(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _change_rows(changes) -> list[dict]:
    """An entry's changes as rows: [before, after] pairs as a change, anything else as a value."""
    if not isinstance(changes, dict):
        return [{"field": "", "value": _show(changes)}]
    rows = []
    for field, value in sorted(changes.items()):
        if isinstance(value, list) and len(value) == 2:
            rows.append({"field": field, "before": _show(value[0]), "after": _show(value[1]), "pair": True})
        else:
            rows.append({"field": field, "value": _show(value), "pair": False})
    return rows


def _context(request, *, verification=None) -> dict:
    form = AuditFilterForm(request.GET or None)
    filters = {}
    if form.is_bound:
        form.is_valid()
        filters = {k: v for k, v in getattr(form, "cleaned_data", {}).items() if k not in form.errors}
    entries = list_audit_entries(actor=request.user, filters=filters)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"entry": e, "changes": _change_rows(e.changes)} for e in page.object_list]
    query = request.GET.copy()
    query.pop("page", None)
    return {"form": form, "page": page, "rows": rows, "query": query.urlencode(), "verification": verification}


@login_required
@require_GET
def audit_log(request):
    return render(request, "core/audit.html", _context(request))


@login_required
@require_POST
def audit_verify(request):
    """Walk the whole chain (core.audit.verify_chain) and say whether it is intact."""
    if not has_role(request.user, *AUDIT_ROLES):
        raise PermissionDenied
    problem = verify_chain()
    verification = {
        "intact": problem is None,
        "seq": problem.seq if problem else None,
        "reason": problem.reason if problem else "",
        "count": AuditEntry.objects.filter(seq__isnull=False).count(),
        "at": timezone.now(),
    }
    if request.headers.get("HX-Request") == "true":
        return render(request, "core/_audit_verification.html", {"verification": verification})
    return render(request, "core/audit.html", _context(request, verification=verification))
