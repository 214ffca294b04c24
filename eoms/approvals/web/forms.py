"""Forms of the flow editor pages. They parse input (JSON, numbers, a file) and give a translated
message for what is not even readable; the rules of a flow are the services' and
validate_document's, whose problems are shown on the page."""

import json

from django import forms
from django.utils.translation import gettext_lazy as _

from ..bpmn import MAX_BYTES as BPMN_MAX_BYTES
from ..subjects import adapters

__all__ = ["DefinitionForm", "ImportForm", "DryRunForm", "MigrateForm", "ON_REJECT_CHOICES", "put_errors"]

_TEXT = {"class": "form-control"}
_SELECT = {"class": "form-select"}
_CHECK = {"class": "form-check-input"}

ON_REJECT_CHOICES = [
    ("rejected", _("The order is rejected (a new submission starts over)")),
    ("quoting", _("The order goes back to quotation for rework")),
]
# Where a service's field error lands on the editor form.
FIELD_ALIASES = {"subject_type": "subject_type", "applies_when": "applies_when"}


class _TablerForm(forms.Form):
    """Marks a field's input invalid whenever an error lands on it (also a service's, added later)."""

    def add_error(self, field, error):
        super().add_error(field, error)
        for name in self.errors:
            if name in self.fields:
                widget = self.fields[name].widget
                classes = widget.attrs.get("class", "")
                if "is-invalid" not in classes:
                    widget.attrs["class"] = f"{classes} is-invalid".strip()


def _json_object(text: str, *, what) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(
            _("%(what)s is not valid JSON: %(error)s (line %(line)s, column %(column)s).")
            % {"what": what, "error": exc.msg, "line": exc.lineno, "column": exc.colno}
        ) from None
    if not isinstance(value, dict):
        raise forms.ValidationError(_("%(what)s must be a JSON object.") % {"what": what})
    return value


class DefinitionForm(_TablerForm):
    """The editor: the flow's settings, the document and the applies-when condition as JSON (edited
    by editor.js, or by hand without JavaScript). `creating` adds the key and the object type; an
    edit carries the version it started from."""

    name = forms.CharField(label=_("Name"), max_length=120, widget=forms.TextInput(attrs=_TEXT))
    key = forms.SlugField(
        label=_("Key"),
        max_length=60,
        required=False,
        help_text=_(
            "Letters, digits, - and _; the same key for every revision of the flow. Blank: made from the name."
        ),
        widget=forms.TextInput(attrs={**_TEXT, "autocomplete": "off", "spellcheck": "false"}),
    )
    subject_type = forms.ChoiceField(label=_("Applies to"), widget=forms.Select(attrs=_SELECT))
    description = forms.CharField(
        label=_("Description"), max_length=4000, required=False, widget=forms.Textarea(attrs={**_TEXT, "rows": 2})
    )
    priority = forms.IntegerField(
        label=_("Priority"),
        min_value=0,
        max_value=100000,
        initial=100,
        help_text=_("Flows are tried in this order, lowest first; the first whose conditions hold applies."),
        widget=forms.NumberInput(attrs={**_TEXT, "inputmode": "numeric"}),
    )
    is_default = forms.BooleanField(
        label=_("Default flow (applies when no other flow's conditions hold)"),
        required=False,
        widget=forms.CheckboxInput(attrs=_CHECK),
    )
    on_reject = forms.ChoiceField(
        label=_("On a final rejection"), choices=ON_REJECT_CHOICES, widget=forms.Select(attrs=_SELECT)
    )
    applies_when = forms.CharField(
        label=_("Applies when (JSON)"),
        required=False,
        help_text=_(
            'Blank: no condition. Otherwise {"any_of": [[rule, …], …]}: the groups are OR\'ed, '
            "the rules of a group AND'ed."
        ),
        widget=forms.Textarea(
            attrs={**_TEXT, "rows": 4, "spellcheck": "false", "class": "form-control font-monospace"}
        ),
    )
    document = forms.CharField(
        label=_("Flow document (JSON)"),
        widget=forms.Textarea(
            attrs={**_TEXT, "rows": 16, "spellcheck": "false", "class": "form-control font-monospace"}
        ),
    )

    def __init__(self, *args, creating: bool, version: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.creating = creating
        self.fields["subject_type"].choices = [(t, str(a.label)) for t, a in sorted(adapters().items())]
        if not creating:
            del self.fields["key"]
            del self.fields["subject_type"]
            self.fields["version"] = forms.IntegerField(widget=forms.HiddenInput, initial=version)

    def clean_document(self) -> dict:
        return _json_object(self.cleaned_data["document"], what=_("The flow document"))

    def clean_applies_when(self):
        text = (self.cleaned_data.get("applies_when") or "").strip()
        if text in ("", "null", "{}"):
            return None
        return _json_object(text, what=_("The condition"))

    def clean(self):
        data = super().clean()
        if isinstance(data.get("document"), dict) and data.get("on_reject"):
            # The select is the one place the setting is edited; the JSON follows it.
            data["document"] = {**data["document"], "on_reject": data["on_reject"]}
        return data


class ImportForm(_TablerForm):
    file = forms.FileField(
        label=_("BPMN file"),
        help_text=_("A .bpmn file (BPMN 2.0 XML) from bpmn.io or Camunda Modeler, at most %(mb)s MB.")
        % {"mb": BPMN_MAX_BYTES // (1024 * 1024)},
        widget=forms.ClearableFileInput(attrs={**_TEXT, "accept": ".bpmn,.xml,application/xml,text/xml"}),
    )
    key = forms.SlugField(
        label=_("Key"),
        max_length=60,
        required=False,
        help_text=_("Blank: the process id of the file. An existing key gets the import as its next draft revision."),
        widget=forms.TextInput(attrs={**_TEXT, "autocomplete": "off"}),
    )

    def clean_file(self) -> bytes:
        upload = self.cleaned_data["file"]
        if upload.size > BPMN_MAX_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(mb)s MB.") % {"mb": BPMN_MAX_BYTES // (1024 * 1024)}
            )
        return upload.read()


class DryRunForm(_TablerForm):
    limit = forms.IntegerField(
        label=_("Last orders"),
        min_value=10,
        max_value=500,
        initial=50,
        widget=forms.NumberInput(attrs={**_TEXT, "inputmode": "numeric"}),
    )


class MigrateForm(_TablerForm):
    to = forms.ChoiceField(label=_("Move to"), widget=forms.Select(attrs=_SELECT))
    instances = forms.MultipleChoiceField(
        label=_("Approvals to move"), required=True, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, targets, instances, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to"].choices = [(str(d.pk), str(d)) for d in targets]
        self.fields["instances"].choices = [(str(i.pk), i.subject_repr) for i in instances]


def put_errors(form, errors: list[dict]) -> list[str]:
    """Put a service's field errors on the form's fields; answers the messages no field took
    (problems of the document itself are shown with their node, not here)."""
    left: list[str] = []
    for error in errors:
        name = str(error.get("field", ""))
        message = str(error.get("message", ""))
        name = FIELD_ALIASES.get(name, name)
        if name.startswith("document"):
            name = "document"
        if name in form.fields and name not in ("document",):
            form.add_error(name, message)
        else:
            left.append(message)
    return left
