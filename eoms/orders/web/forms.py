"""Forms of the order pages. They parse and check input for a friendly, translated message; the
rules themselves are the services' (a service's field error is put back on the form's field)."""

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from eoms.accounts.selectors import list_users
from eoms.masterdata.selectors import list_projects

from .. import policies, selectors
from ..errors import OrderNotFound
from ..models import AttachmentKind, OrderKind, TaxRate
from ..state import OrderState

__all__ = [
    "MoneyField",
    "OrderFilterForm",
    "OrderCreateForm",
    "OrderEditForm",
    "TransitionForm",
    "AttachmentForm",
    "ORDERING_CHOICES",
]

ORDERING_CHOICES = [
    ("-created", _("Newest first")),
    ("created", _("Oldest first")),
    ("-amount", _("Largest amount first")),
    ("amount", _("Smallest amount first")),
    ("deadline", _("Deadline, soonest first")),
    ("-deadline", _("Deadline, latest first")),
    ("number", _("Number, ascending")),
    ("-number", _("Number, descending")),
    ("-updated", _("Recently changed first")),
]

_TEXT = {"class": "form-control"}
_SELECT = {"class": "form-select"}


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


class MoneyField(forms.DecimalField):
    """An amount in yuan; accepts what people type: "1,250,000.00", "¥ 1 250 000", "1250000元"."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 12)
        kwargs.setdefault("decimal_places", 2)
        kwargs.setdefault("widget", forms.TextInput(attrs={**_TEXT, "inputmode": "decimal", "autocomplete": "off"}))
        super().__init__(**kwargs)

    def to_python(self, value):
        if isinstance(value, str):
            value = value.strip().translate({ord(c): None for c in ",， ¥￥元"})
        return super().to_python(value)


def _project_choices(actor, *, creatable: bool = False) -> list[tuple[str, str]]:
    projects = list(list_projects(actor=actor))
    if creatable:
        projects = [p for p in projects if policies.can_create_order(actor, p.id)]
    return [(str(p.id), str(p)) for p in projects]


def _title_field():
    return forms.CharField(label=_("Title"), max_length=200, widget=forms.TextInput(attrs=_TEXT))


def _kind_field():
    return forms.ChoiceField(
        label=_("Type"), choices=OrderKind.choices, initial=OrderKind.CONSTRUCTION, widget=forms.Select(attrs=_SELECT)
    )


def _amount_field():
    return MoneyField(
        label=_("Contract amount, tax included (¥)"),
        min_value=Decimal("0.01"),
        help_text=_("In yuan with at most two decimals."),
    )


def _cost_field():
    return MoneyField(
        label=_("Estimated cost (¥)"),
        required=False,
        min_value=Decimal("0"),
        help_text=_("The quotation's cost estimate, on the same basis as the amount; it gives the gross margin."),
    )


def _tax_rate_field():
    return forms.ChoiceField(
        label=_("VAT rate"), choices=TaxRate.choices, initial=TaxRate.CONSTRUCTION, widget=forms.Select(attrs=_SELECT)
    )


def _description_field():
    return forms.CharField(
        label=_("Description"), required=False, max_length=20000, widget=forms.Textarea(attrs={**_TEXT, "rows": 4})
    )


class OrderFilterForm(TablerForm):
    """The list's filters, one field per selectors.OrderFilters attribute. Invalid values are
    reported on their field and ignored, so a bad link still lists orders."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={**_TEXT, "type": "search", "placeholder": _("Number, title, project or customer")}
        ),
    )
    state = forms.MultipleChoiceField(
        label=_("State"),
        required=False,
        choices=OrderState.choices,
        widget=forms.SelectMultiple(attrs={**_SELECT, "size": 4}),
    )
    project = forms.ChoiceField(label=_("Project"), required=False, widget=forms.Select(attrs=_SELECT))
    customer = forms.ChoiceField(label=_("Customer"), required=False, widget=forms.Select(attrs=_SELECT))
    region = forms.ChoiceField(label=_("Region"), required=False, widget=forms.Select(attrs=_SELECT))
    kind = forms.ChoiceField(
        label=_("Type"),
        required=False,
        choices=[("", _("All types")), *OrderKind.choices],
        widget=forms.Select(attrs=_SELECT),
    )
    stage_owner = forms.ChoiceField(label=_("Stage owner"), required=False, widget=forms.Select(attrs=_SELECT))
    amount_min = MoneyField(label=_("Amount from (¥)"), required=False, min_value=Decimal(0))
    amount_max = MoneyField(label=_("Amount to (¥)"), required=False, min_value=Decimal(0))
    created_from = forms.DateField(
        label=_("Created from"), required=False, widget=forms.DateInput(attrs={**_TEXT, "type": "date"})
    )
    created_to = forms.DateField(
        label=_("Created to"), required=False, widget=forms.DateInput(attrs={**_TEXT, "type": "date"})
    )
    overdue = forms.ChoiceField(
        label=_("Overdue"),
        required=False,
        choices=[("", _("Any")), ("yes", _("Overdue only")), ("no", _("Not overdue"))],
        widget=forms.Select(attrs=_SELECT),
    )
    ordering = forms.ChoiceField(
        label=_("Sort by"), required=False, choices=ORDERING_CHOICES, widget=forms.Select(attrs=_SELECT)
    )

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        projects = list(list_projects(actor=actor))
        self.fields["project"].choices = [("", _("All projects")), *((str(p.id), str(p)) for p in projects)]
        customers = {str(p.customer_id): p.customer.name for p in projects}
        self.fields["customer"].choices = [
            ("", _("All customers")),
            *sorted(customers.items(), key=lambda kv: kv[1]),
        ]
        regions = {p.region: p.get_region_display() for p in projects}
        self.fields["region"].choices = [("", _("All regions")), *sorted(regions.items())]
        owners = (
            selectors.list_orders(actor=actor)
            .exclude(stage_owner=None)
            .order_by()
            .values_list("stage_owner_id", "stage_owner__username", "stage_owner__display_name")
            .distinct()
        )
        owner_choices = {str(pk): display or username for pk, username, display in owners}
        if actor.pk and str(actor.pk) not in owner_choices:
            owner_choices[str(actor.pk)] = actor.display_name or actor.username
        self.fields["stage_owner"].choices = [
            ("", _("Anyone")),
            *sorted(owner_choices.items(), key=lambda kv: kv[1]),
        ]

    def clean(self):
        data = super().clean()
        low, high = data.get("amount_min"), data.get("amount_max")
        if low is not None and high is not None and low > high:
            self.add_error("amount_max", _("Must not be less than the lower bound."))
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", _("Must not be before the start date."))
        return data

    def to_filters(self) -> selectors.OrderFilters:
        """The filters from the valid fields; invalid ones are left out (and shown as errors)."""
        self.is_valid()
        data = {k: v for k, v in getattr(self, "cleaned_data", {}).items() if k not in self.errors}
        overdue = {"yes": True, "no": False}.get(data.get("overdue") or "")
        return selectors.OrderFilters(
            state=list(data.get("state") or []) or None,
            project=data.get("project") or None,
            customer=data.get("customer") or None,
            region=data.get("region") or None,
            kind=data.get("kind") or None,
            stage_owner=data.get("stage_owner") or None,
            amount_min=data.get("amount_min"),
            amount_max=data.get("amount_max"),
            created_from=data.get("created_from"),
            created_to=data.get("created_to"),
            overdue=overdue,
            q=data.get("q") or "",
            ordering=data.get("ordering") or "-created",
        )

    @property
    def active_count(self) -> int:
        """How many filters are set (shown on the collapsed filter panel on a phone)."""
        if not self.is_bound:
            return 0
        return sum(1 for name in self.fields if name != "ordering" and self.data.get(name))


class OrderCreateForm(TablerForm):
    """Open an order (立项) on a project where the actor may create orders; optionally under a parent."""

    project = forms.ChoiceField(label=_("Project"), widget=forms.Select(attrs=_SELECT))
    parent = forms.CharField(
        label=_("Parent order number"),
        required=False,
        max_length=20,
        help_text=_("For a subcontract: the number of the order it belongs to, e.g. ORD-2026-000123."),
        widget=forms.TextInput(attrs={**_TEXT, "autocomplete": "off", "placeholder": "ORD-2026-000123"}),
    )
    title = _title_field()
    kind = _kind_field()
    contract_amount = _amount_field()
    estimated_cost = _cost_field()
    tax_rate = _tax_rate_field()
    description = _description_field()

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        projects = _project_choices(actor, creatable=True)
        self.fields["project"].choices = [("", "—"), *projects]
        if len(projects) == 1 and not self.initial.get("project"):
            self.initial["project"] = projects[0][0]
        self.parent_order = None

    def clean_parent(self):
        number = (self.cleaned_data.get("parent") or "").strip().upper()
        if not number:
            return ""
        try:
            self.parent_order = selectors.get_order_by_number(self.actor, number)
        except OrderNotFound:
            raise ValidationError(_("There is no order %(number)s that you can see."), params={"number": number})
        return number

    def clean(self):
        data = super().clean()
        parent, project = self.parent_order, data.get("project")
        if parent is not None and project and str(parent.project_id) != project:
            self.add_error("parent", _("A subcontract belongs to its parent's project; choose that project."))
        return data


_EDIT_ORDER = (
    "title",
    "kind",
    "contract_amount",
    "estimated_cost",
    "tax_rate",
    "stage_owner",
    "stage_deadline",
    "description",
)


class OrderEditForm(TablerForm):
    """Edit an order: only the fields its state lets this actor change (policies.editable_fields)."""

    version = forms.IntegerField(widget=forms.HiddenInput)
    title = _title_field()
    kind = _kind_field()
    contract_amount = _amount_field()
    estimated_cost = _cost_field()
    tax_rate = _tax_rate_field()
    stage_owner = forms.ModelChoiceField(
        label=_("Stage owner"), queryset=None, required=False, widget=forms.Select(attrs=_SELECT)
    )
    stage_deadline = forms.DateTimeField(
        label=_("Stage deadline"),
        required=False,
        widget=forms.DateTimeInput(attrs={**_TEXT, "type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    description = _description_field()

    def __init__(self, *args, actor, order, **kwargs):
        deadline = order.stage_deadline.replace(second=0, microsecond=0) if order.stage_deadline else None
        initial = {
            "version": order.version,
            "title": order.title,
            "kind": order.kind,
            "contract_amount": order.contract_amount,
            "estimated_cost": order.estimated_cost,
            "tax_rate": f"{order.tax_rate:.2f}",
            "stage_owner": order.stage_owner_id,
            "stage_deadline": deadline,
            "description": order.description,
        }
        super().__init__(*args, initial=initial, **kwargs)
        self.editable = policies.editable_fields(actor, order)
        for name in list(self.fields):
            if name != "version" and name not in self.editable:
                del self.fields[name]
        if "stage_owner" in self.fields:
            self.fields["stage_owner"].queryset = list_users(actor=actor)
        self.order_fields(["version", *_EDIT_ORDER])

    def changes(self) -> dict:
        """The edited fields only, so that an untouched field is not rewritten."""
        return {name: self.cleaned_data[name] for name in self.changed_data if name != "version"}


class TransitionForm(TablerForm):
    """One transition's small form: the version the user saw, a comment (required when the
    transition says so) and an optional file, e.g. the signed contract that signing needs."""

    version = forms.IntegerField(widget=forms.HiddenInput)
    comment = forms.CharField(
        label=_("Comment"), required=False, max_length=4000, widget=forms.Textarea(attrs={**_TEXT, "rows": 2})
    )
    file = forms.FileField(
        label=_("File"), required=False, widget=forms.ClearableFileInput(attrs={"class": "form-control"})
    )
    kind = forms.ChoiceField(
        label=_("File kind"), choices=AttachmentKind.choices, required=False, widget=forms.Select(attrs=_SELECT)
    )

    def __init__(self, *args, transition, order, picked_nodes=(), picked_initial=None, actor=None, **kwargs):
        # A guard that needs a file of some kind names the kind in its code; offer that kind first.
        needed = [k for g in transition.guards for k in AttachmentKind.values if k in g.code]
        initial = {"version": order.version, "kind": needed[0] if needed else AttachmentKind.OTHER}
        # Submitting starts the approval: the initiator picks the approver of each node whose
        # approver is "picked at submission" (field picked_<node id>).
        for node_id, _name in picked_nodes:
            initial[f"picked_{node_id}"] = (picked_initial or {}).get(node_id)
        super().__init__(*args, initial=initial, prefix=transition.name, **kwargs)
        self.transition = transition
        self.needs_file_kind = needed[0] if needed else None
        if transition.comment_required:
            self.fields["comment"].required = True
            self.fields["comment"].widget.attrs["required"] = True
        self.picked_names = []
        for node_id, name in picked_nodes:
            field = f"picked_{node_id}"
            self.fields[field] = forms.ModelChoiceField(
                label=_("Approver for “%(node)s”") % {"node": name},
                queryset=list_users(actor=actor).exclude(pk=getattr(actor, "pk", None)),
                empty_label="—",
                widget=forms.Select(attrs=_SELECT),
            )
            self.picked_names.append((field, node_id))

    @property
    def picked_fields(self):
        return [self[field] for field, _node in self.picked_names]

    def picked(self) -> dict:
        """{node id: user id} of the approvers picked on this form."""
        return {
            node: str(self.cleaned_data[field].pk) for field, node in self.picked_names if self.cleaned_data.get(field)
        }

    def clean_comment(self):
        return (self.cleaned_data.get("comment") or "").strip()

    def clean(self):
        data = super().clean()
        if data.get("file") and not data.get("kind"):
            self.add_error("kind", _("Say what kind of file this is."))
        return data


class AttachmentForm(TablerForm):
    file = forms.FileField(label=_("File"), widget=forms.ClearableFileInput(attrs={"class": "form-control"}))
    kind = forms.ChoiceField(
        label=_("Kind"),
        choices=AttachmentKind.choices,
        initial=AttachmentKind.OTHER,
        widget=forms.Select(attrs=_SELECT),
    )
