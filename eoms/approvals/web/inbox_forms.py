"""Forms of the approver's pages: the inbox filters and bulk decision, the task's actions, and
delegations. They parse and check input for a friendly, translated message; the rules are the
services' (a service's field error is put back on the form's field by the view)."""

from decimal import Decimal, InvalidOperation

from django import forms
from django.utils.translation import gettext_lazy as _

from eoms.accounts.selectors import list_users

__all__ = [
    "TaskFilterForm",
    "BulkDecisionForm",
    "ApproveForm",
    "RejectForm",
    "TransferForm",
    "AddSignerForm",
    "CommentForm",
    "WithdrawForm",
    "DelegationForm",
    "BOXES",
]

_TEXT = {"class": "form-control"}
_SELECT = {"class": "form-select"}

BOXES = [
    ("pending", _("Pending")),
    ("done", _("Done")),
    ("cc", _("CC'd")),
    ("delegated", _("Delegated")),
]


class TablerForm(forms.Form):
    """Marks a field with an error `is-invalid`, as Tabler (Bootstrap) styles it."""

    def add_error(self, field, error):
        super().add_error(field, error)
        for name in self.errors:
            if name in self.fields:
                widget = self.fields[name].widget
                classes = widget.attrs.get("class", "").split()
                if "is-invalid" not in classes:
                    widget.attrs["class"] = " ".join([*classes, "is-invalid"])


def _comment_field(*, required: bool = False, label=None):
    field = forms.CharField(
        label=label or _("Comment"),
        required=required,
        max_length=4000,
        widget=forms.Textarea(attrs={**_TEXT, "rows": 2}),
    )
    if required:
        field.widget.attrs["required"] = True
    return field


def _file_field():
    return forms.FileField(
        label=_("File"), required=False, widget=forms.ClearableFileInput(attrs={"class": "form-control"})
    )


def _user_field(actor, *, label, exclude=()):
    queryset = list_users(actor=actor)
    if exclude:
        queryset = queryset.exclude(pk__in=[u for u in exclude if u])
    return forms.ModelChoiceField(label=label, queryset=queryset, empty_label="—", widget=forms.Select(attrs=_SELECT))


class TaskFilterForm(TablerForm):
    """The inbox's box, search and overdue filter; invalid values fall back to the defaults."""

    box = forms.ChoiceField(choices=BOXES, required=False, widget=forms.HiddenInput)
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={**_TEXT, "type": "search", "placeholder": _("Order number or title")}),
    )
    overdue = forms.BooleanField(
        label=_("Overdue only"), required=False, widget=forms.CheckboxInput(attrs={"class": "form-check-input"})
    )

    def values(self) -> dict:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "box": data.get("box") or "pending",
            "q": (data.get("q") or "").strip() if "q" not in self.errors else "",
            "overdue": bool(data.get("overdue")),
        }


class BulkDecisionForm(TablerForm):
    """Approve or reject the ticked tasks with one comment (a rejection needs one)."""

    decision = forms.ChoiceField(choices=[("approve", _("Approve")), ("reject", _("Reject"))])
    comment = _comment_field()
    tasks = forms.MultipleChoiceField(required=True, error_messages={"required": _("Tick at least one task.")})

    def __init__(self, *args, task_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        # Any id may be posted; the service answers for each one (a task not yours fails alone).
        self.fields["tasks"].choices = [(str(t), str(t)) for t in task_ids]

    def clean_comment(self):
        return (self.cleaned_data.get("comment") or "").strip()

    def clean(self):
        data = super().clean()
        if data.get("decision") == "reject" and not data.get("comment"):
            self.add_error("comment", _("Give a reason: a comment is required to reject."))
        return data


def _spec_field(spec, initial):
    """A form field for an editable field of the object (eoms.approvals.subjects.FieldSpec)."""
    if spec.type == "decimal":
        return forms.DecimalField(
            label=spec.label,
            required=False,
            max_digits=14,
            decimal_places=2,
            initial=initial,
            widget=forms.TextInput(attrs={**_TEXT, "inputmode": "decimal", "autocomplete": "off"}),
        )
    if spec.type == "int":
        return forms.IntegerField(label=spec.label, required=False, initial=initial, widget=forms.NumberInput(_TEXT))
    if spec.type == "choice":
        return forms.ChoiceField(
            label=spec.label, required=False, choices=list(spec.choices), initial=initial, widget=forms.Select(_SELECT)
        )
    widget = forms.Textarea(attrs={**_TEXT, "rows": 3}) if spec.name == "description" else forms.TextInput(_TEXT)
    return forms.CharField(label=spec.label, required=False, initial=initial, widget=widget)


def _initial_of(spec, obj):
    value = getattr(obj, spec.name, None)
    if spec.type == "choice" and isinstance(value, Decimal):
        # Choice values are text ("0.09"); the model holds a Decimal with its own scale.
        for choice, _label in spec.choices:
            try:
                if Decimal(str(choice)) == value:
                    return choice
            except InvalidOperation:
                continue
    return value


class ApproveForm(TablerForm):
    """Approve with a comment, optionally a file, and edits of the fields the node lets its
    approvers edit (only the fields actually changed are sent)."""

    comment = _comment_field()
    file = _file_field()

    def __init__(self, *args, editable=(), obj=None, **kwargs):
        super().__init__(*args, prefix="approve", **kwargs)
        self.edit_names = []
        for spec in editable:
            name = f"edit_{spec.name}"
            self.fields[name] = _spec_field(spec, _initial_of(spec, obj))
            self.edit_names.append((name, spec.name))

    @property
    def edit_fields(self):
        return [self[name] for name, _field in self.edit_names]

    def changes(self) -> dict:
        out = {}
        for name, field in self.edit_names:
            if name in self.changed_data:
                value = self.cleaned_data.get(name)
                if value in (None, "") and field != "description":
                    continue
                out[field] = value
        return out


class RejectForm(TablerForm):
    """Reject: end the approval, return to an earlier approved node, or to the initiator."""

    comment = _comment_field()
    return_to = forms.ChoiceField(label=_("What happens next"), required=False, widget=forms.Select(_SELECT))
    file = _file_field()

    def __init__(self, *args, comment_required: bool = True, return_choices=(), **kwargs):
        super().__init__(*args, prefix="reject", **kwargs)
        if comment_required:
            self.fields["comment"].required = True
            self.fields["comment"].widget.attrs["required"] = True
        self.fields["return_to"].choices = [
            ("", _("End the approval (rejected)")),
            *return_choices,
            ("initiator", _("Return to the initiator for revision")),
        ]


class TransferForm(TablerForm):
    comment = _comment_field()

    def __init__(self, *args, actor, exclude=(), **kwargs):
        super().__init__(*args, prefix="transfer", **kwargs)
        self.fields["to_user"] = _user_field(actor, label=_("Transfer to"), exclude=exclude)
        self.order_fields(["to_user", "comment"])


class AddSignerForm(TablerForm):
    position = forms.ChoiceField(
        label=_("When they decide"),
        choices=[
            ("before", _("Before me")),
            ("after", _("After me")),
            ("parallel", _("Alongside me")),
        ],
        initial="before",
        widget=forms.Select(_SELECT),
    )
    comment = _comment_field()

    def __init__(self, *args, actor, exclude=(), **kwargs):
        super().__init__(*args, prefix="signer", **kwargs)
        self.fields["user"] = _user_field(actor, label=_("Signer"), exclude=exclude)
        self.order_fields(["user", "position", "comment"])


class CommentForm(TablerForm):
    comment = _comment_field()
    file = _file_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, prefix="note", **kwargs)

    def clean(self):
        data = super().clean()
        if not (data.get("comment") or "").strip() and not data.get("file"):
            self.add_error("comment", _("Write a comment or add a file."))
        return data


class WithdrawForm(TablerForm):
    comment = _comment_field()


class DelegationForm(TablerForm):
    """Name a deputy for a period. Admins may set one for any user; others for themselves."""

    deputy = forms.ModelChoiceField(label=_("Deputy"), queryset=None, widget=forms.Select(_SELECT))
    starts_on = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={**_TEXT, "type": "date"}))
    ends_on = forms.DateField(label=_("Until"), widget=forms.DateInput(attrs={**_TEXT, "type": "date"}))
    reason = forms.CharField(label=_("Reason"), required=False, max_length=200, widget=forms.TextInput(_TEXT))

    def __init__(self, *args, actor, for_anyone: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["deputy"].queryset = list_users(actor=actor)
        if for_anyone:
            self.fields["user"] = forms.ModelChoiceField(
                label=_("Absent user"),
                queryset=list_users(actor=actor),
                initial=actor.pk,
                widget=forms.Select(_SELECT),
            )
            self.order_fields(["user", "deputy", "starts_on", "ends_on", "reason"])
