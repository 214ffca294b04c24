"""Forms of the master data pages. They parse input and give a friendly, translated message for a
wrong type; the rules themselves are the services' (a service's field error is put back on the
form's field by `put_errors`)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from eoms.accounts.roles import ProjectRole, Role
from eoms.accounts.selectors import list_users, users_with_role

from .. import policies, selectors, sensitive
from ..imports import MAX_IMPORT_BYTES
from ..models import CustomerGrade, Region, SupplierKind
from ..services import MAX_CONTACTS

__all__ = [
    "CustomerForm",
    "ContactFormSet",
    "ProjectForm",
    "SupplierForm",
    "ProjectTypeForm",
    "MemberForm",
    "ImportForm",
    "put_errors",
]

_TEXT = {"class": "form-control"}
_SELECT = {"class": "form-select"}


class TablerForm(forms.Form):
    """Marks a field's input invalid whenever an error lands on it (also a service's, added later)."""

    def add_error(self, field, error):
        super().add_error(field, error)
        for name in self.errors:
            if name in self.fields:
                widget = self.fields[name].widget
                classes = widget.attrs.get("class", "")
                if "is-invalid" not in classes:
                    widget.attrs["class"] = f"{classes} is-invalid".strip()


def _text(label, max_length, *, required=False, **attrs):
    return forms.CharField(
        label=label, max_length=max_length, required=required, widget=forms.TextInput(attrs={**_TEXT, **attrs})
    )


def _region_field():
    return forms.ChoiceField(label=_("Region"), choices=Region.choices, widget=forms.Select(attrs=_SELECT))


def _uscc_field():
    return forms.CharField(
        label=_("Unified social credit code"),
        max_length=40,
        help_text=_("18 characters; the last is a check character."),
        widget=forms.TextInput(attrs={**_TEXT, "autocomplete": "off", "spellcheck": "false"}),
    )


def _mobile_field(label):
    return forms.CharField(
        label=label,
        max_length=20,
        required=False,
        widget=forms.TextInput(attrs={**_TEXT, "type": "tel", "inputmode": "tel", "autocomplete": "off"}),
    )


class _EditableMixin:
    """Initial values from an instance, a hidden version, and `changes()` with the edited fields only."""

    def _setup_instance(self, instance):
        if instance is not None:
            self.fields["version"] = forms.IntegerField(widget=forms.HiddenInput, initial=instance.version)
            encrypted = getattr(instance, "encrypted_fields", ())
            for name in self.fields:
                if name in encrypted:
                    # Only administrators edit master data, and they may see these values in clear.
                    self.initial.setdefault(name, sensitive.clear(instance, name))
                elif name != "version" and hasattr(instance, name):
                    value = getattr(instance, name)
                    self.initial.setdefault(name, value.pk if hasattr(value, "pk") else value)

    def changes(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.changed_data if name != "version"}


class CustomerForm(_EditableMixin, TablerForm):
    name = _text(_("Name"), 200, required=True)
    uscc = _uscc_field()
    region = _region_field()
    grade = forms.ChoiceField(
        label=_("Grade"), choices=CustomerGrade.choices, initial=CustomerGrade.C, widget=forms.Select(attrs=_SELECT)
    )
    address = _text(_("Address"), 300)
    notes = forms.CharField(
        label=_("Notes"), required=False, max_length=5000, widget=forms.Textarea(attrs={**_TEXT, "rows": 3})
    )
    id_card_number = _text(
        _("ID card number"), 40, autocomplete="off", spellcheck="false", placeholder="11010519491231002X"
    )

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup_instance(instance)


class ContactForm(TablerForm):
    name = _text(_("Contact name"), 100)
    title = _text(_("Job title"), 100)
    phone = _mobile_field(_("Mobile"))
    email = forms.EmailField(label=_("Email"), required=False, widget=forms.EmailInput(attrs=_TEXT))

    def clean(self):
        data = super().clean()
        filled = any(data.get(f) for f in ("title", "phone", "email"))
        if filled and not data.get("name") and not self.cleaned_data.get("DELETE"):
            self.add_error("name", _("Give the contact's name."))
        return data

    def contact(self) -> dict | None:
        data = self.cleaned_data
        if not data or data.get("DELETE") or not any(data.get(f) for f in ("name", "title", "phone", "email")):
            return None
        return {f: data.get(f) or "" for f in ("name", "title", "phone", "email")}


ContactFormSet = forms.formset_factory(ContactForm, extra=1, max_num=MAX_CONTACTS, validate_max=True, can_delete=True)


def contacts_of(formset) -> list[dict]:
    return [c for c in (f.contact() for f in formset.forms) if c is not None]


class ProjectForm(_EditableMixin, TablerForm):
    """Create a project (all fields) or edit one: only the fields this actor may change."""

    code = _text(_("Code"), 40, required=True, autocomplete="off")
    name = _text(_("Name"), 200, required=True)
    customer = forms.ModelChoiceField(label=_("Customer"), queryset=None, widget=forms.Select(attrs=_SELECT))
    project_type = forms.ModelChoiceField(label=_("Project type"), queryset=None, widget=forms.Select(attrs=_SELECT))
    region = _region_field()
    province = _text(_("Province"), 40)
    city = _text(_("City"), 40)
    address = _text(_("Address"), 300)
    latitude = forms.DecimalField(
        label=_("Latitude"),
        required=False,
        min_value=-90,
        max_value=90,
        decimal_places=6,
        max_digits=9,
        help_text=_("WGS-84 degrees, e.g. 31.230416"),
        widget=forms.NumberInput(attrs={**_TEXT, "step": "0.000001", "inputmode": "decimal"}),
    )
    longitude = forms.DecimalField(
        label=_("Longitude"),
        required=False,
        min_value=-180,
        max_value=180,
        decimal_places=6,
        max_digits=9,
        help_text=_("WGS-84 degrees, e.g. 121.473701"),
        widget=forms.NumberInput(attrs={**_TEXT, "step": "0.000001", "inputmode": "decimal"}),
    )
    geofence_radius_m = forms.IntegerField(
        label=_("Geofence radius (m)"),
        initial=500,
        min_value=10,
        max_value=50000,
        help_text=_("Check-ins farther than this from the site are flagged."),
        widget=forms.NumberInput(attrs=_TEXT),
    )
    manager = forms.ModelChoiceField(
        label=_("Project manager"),
        queryset=None,
        required=False,
        help_text=_("Becomes a member of the project with the project role “pm”."),
        widget=forms.Select(attrs=_SELECT),
    )
    is_active = forms.BooleanField(
        label=_("Active"), required=False, widget=forms.CheckboxInput(attrs={"class": "form-check-input"})
    )

    def __init__(self, *args, actor, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = selectors.list_customers(actor=actor)
        self.fields["project_type"].queryset = selectors.list_project_types(actor=actor)
        self.fields["manager"].queryset = users_with_role(Role.PROJECT_MANAGER).order_by("username")
        if instance is None:
            del self.fields["is_active"]
        else:
            allowed = policies.editable_project_fields(actor, instance)
            for name in list(self.fields):
                if name not in allowed:
                    del self.fields[name]
        self._setup_instance(instance)


class SupplierForm(_EditableMixin, TablerForm):
    name = _text(_("Name"), 200, required=True)
    uscc = _uscc_field()
    kind = forms.ChoiceField(label=_("Kind"), choices=SupplierKind.choices, widget=forms.Select(attrs=_SELECT))
    region = _region_field()
    contact_name = _text(_("Contact"), 100)
    contact_phone = _mobile_field(_("Contact mobile"))
    bank_account = _text(_("Bank account number"), 40, autocomplete="off", inputmode="numeric")
    qualification = _text(_("Qualification"), 200)
    is_active = forms.BooleanField(
        label=_("Active"), required=False, widget=forms.CheckboxInput(attrs={"class": "form-check-input"})
    )

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        if instance is None:
            del self.fields["is_active"]
        self._setup_instance(instance)


class ProjectTypeForm(TablerForm):
    code = _text(_("Code"), 40, required=True, autocomplete="off", placeholder="municipal_road")
    name = _text(_("Name"), 100, required=True, placeholder="市政道路")
    name_en = _text(_("English name"), 100, placeholder="Municipal roads")


class MemberForm(TablerForm):
    user = forms.ModelChoiceField(label=_("User"), queryset=None, widget=forms.Select(attrs=_SELECT))
    role = forms.ChoiceField(
        label=_("Project role"),
        choices=ProjectRole.choices,
        initial=ProjectRole.VIEWER,
        widget=forms.Select(attrs=_SELECT),
    )

    def __init__(self, *args, actor, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = list_users(actor=actor).exclude(memberships__project=project)


class ImportForm(TablerForm):
    file = forms.FileField(
        label=_("Excel file (.xlsx)"),
        help_text=_("Row 1 holds the column headers, in Chinese or English, as in the template."),
        widget=forms.ClearableFileInput(
            attrs={"class": "form-control", "accept": ".xlsx,application/vnd.openxmlformats-officedocument"}
        ),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(mb)d MB; split it into smaller files."),
                params={"mb": MAX_IMPORT_BYTES // 2**20},
            )
        return upload


def put_errors(form, exc, *, formset=None, aliases: dict | None = None) -> list[str]:
    """Put a service's field errors on the form's (or the contact formset's) fields; returns the
    messages that found no field, to show above the form."""
    leftover = []
    for error in exc.errors:
        field = (aliases or {}).get(error.get("field", ""), error.get("field", ""))
        message = error.get("message", "")
        parts = field.split(".")
        if formset is not None and parts[0] == "contacts" and len(parts) == 3 and parts[1].isdigit():
            index = int(parts[1])
            filled = [f for f in formset.forms if f.contact() is not None]
            if index < len(filled) and parts[2] in filled[index].fields:
                filled[index].add_error(parts[2], message)
                continue
        if field in form.fields:
            form.add_error(field, message)
        else:
            leftover.append(message)
    return leftover
