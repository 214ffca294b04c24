"""Master data pages: lists with search and pages, details, create and edit forms, project members,
and the Excel imports. Views are thin: parse a form, fetch through selectors (what the user may not
see answers 404), call one service, render. A user without the right gets no button and a 403 on a
direct request; a domain error is shown on the page, never as a 500."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from eoms.core.errors import DomainError, NotFound, PermissionDenied, ValidationFailed

from .. import imports, policies, selectors, sensitive, services
from ..errors import StaleMasterData
from ..models import Customer, Region, SupplierKind
from .forms import (
    ContactFormSet,
    CustomerForm,
    ImportForm,
    MemberForm,
    ProjectForm,
    ProjectTypeForm,
    SupplierForm,
    contacts_of,
    put_errors,
)

__all__ = [
    "project_list",
    "project_detail",
    "project_create",
    "project_edit",
    "project_member_add",
    "project_member_remove",
    "project_import",
    "project_template",
    "customer_list",
    "customer_detail",
    "customer_create",
    "customer_edit",
    "customer_delete",
    "customer_reveal",
    "customer_import",
    "customer_template",
    "supplier_list",
    "supplier_detail",
    "supplier_create",
    "supplier_edit",
    "supplier_reveal",
    "project_types",
]

PAGE_SIZE = 25


def _deny_unless(allowed: bool) -> None:
    if not allowed:
        raise DjangoPermissionDenied(_("You may not change this."))


def _fetch(access, actor, object_id):
    try:
        return access(actor, object_id)
    except NotFound as exc:
        raise Http404(exc.detail)


def _list_context(request, qs, filters: dict) -> dict:
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode({k: v for k, v in filters.items() if v})
    return {"page_obj": page, "filters": filters, "query": query}


def _choice_param(request, name: str, choices) -> str:
    value = request.GET.get(name, "")
    return value if value in choices.values else ""


def _domain_error(request, exc: DomainError, form=None, formset=None, aliases=None) -> None:
    """Show a service's refusal: field errors on their fields, the rest as a message."""
    if isinstance(exc, ValidationFailed) and form is not None:
        leftover = put_errors(form, exc, formset=formset, aliases=aliases)
        for message in leftover:
            form.add_error(None, message)
        if not exc.errors:
            form.add_error(None, exc.detail)
        return
    if isinstance(exc, PermissionDenied):
        raise DjangoPermissionDenied(exc.detail)
    if isinstance(exc, NotFound):
        raise Http404(exc.detail)
    messages.error(request, exc.detail)


def _reload(request, label: str):
    """Someone else saved first: show the current values rather than overwrite theirs."""
    changed = _("%(label)s was changed by someone else while you were editing.") % {"label": label}
    messages.error(request, f"{changed} {_('The form now shows the saved values; make your change again.')}")
    return redirect(request.path)


def _form_page(
    request,
    form,
    save,
    *,
    success,
    redirect_to,
    title: str,
    cancel_url: str,
    stale_label: str | None = None,
    formset=None,
    template: str = "masterdata/form.html",
    extra: dict | None = None,
):
    """The flow of every create and edit page. On a valid POST, `save()` makes the one service call and
    returns the saved object; then `success(saved)` is the message and `redirect_to(saved)` where to go.
    An edit names its record in `stale_label`: if someone else saved first the page reloads. Any other
    refusal is shown on the form, which is rendered again."""
    if request.method == "POST" and form.is_valid() & (formset is None or formset.is_valid()):
        try:
            saved = save()
        except DomainError as exc:
            if isinstance(exc, StaleMasterData) and stale_label is not None:
                return _reload(request, stale_label)
            _domain_error(request, exc, form, formset)
        else:
            messages.success(request, success(saved))
            return redirect(redirect_to(saved))
    context = {"form": form, "title": title, "cancel_url": cancel_url}
    if formset is not None:
        context["formset"] = formset
    return render(request, template, {**context, **(extra or {})})


def _xlsx_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=imports.XLSX_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# ------------------------------------------------------------------------------------------ projects


@login_required
@require_GET
def project_list(request):
    filters = {"q": request.GET.get("q", "").strip()[:100], "region": _choice_param(request, "region", Region)}
    qs = selectors.list_projects(actor=request.user, search=filters["q"], region=filters["region"])
    context = _list_context(request, qs, filters)
    context.update(regions=Region.choices, can_create=policies.can_create_project(request.user))
    return render(request, "masterdata/project_list.html", context)


def _project_page(request, project, member_form=None, status=200):
    return render(
        request,
        "masterdata/project_detail.html",
        {
            "project": project,
            "members": selectors.list_project_members(project),
            "can_edit": policies.can_edit_project(request.user, project),
            "can_manage_members": policies.can_manage_members(request.user, project),
            "member_form": member_form or MemberForm(actor=request.user, project=project),
        },
        status=status,
    )


@login_required
@require_GET
def project_detail(request, project_id):
    return _project_page(request, _fetch(selectors.access_project, request.user, project_id))


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request):
    _deny_unless(policies.can_create_project(request.user))
    form = ProjectForm(request.POST or None, actor=request.user)
    return _form_page(
        request,
        form,
        lambda: services.create_project(actor=request.user, **form.cleaned_data),
        success=lambda project: _("Project %(code)s created.") % {"code": project.code},
        redirect_to=lambda project: reverse("masterdata:project_detail", args=[project.id]),
        title=_("New project"),
        cancel_url=reverse("masterdata:projects"),
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_edit(request, project_id):
    project = _fetch(selectors.access_project, request.user, project_id)
    _deny_unless(policies.can_edit_project(request.user, project))
    form = ProjectForm(request.POST or None, actor=request.user, instance=project)
    return _form_page(
        request,
        form,
        lambda: services.update_project(
            actor=request.user,
            project_id=project.id,
            changes=form.changes(),
            expected_version=form.cleaned_data["version"],
        ),
        success=lambda _saved: _("Project %(code)s saved.") % {"code": project.code},
        redirect_to=lambda _saved: reverse("masterdata:project_detail", args=[project.id]),
        title=_("Edit project %(code)s") % {"code": project.code},
        cancel_url=reverse("masterdata:project_detail", args=[project.id]),
        stale_label=project.code,
    )


@login_required
@require_POST
def project_member_add(request, project_id):
    project = _fetch(selectors.access_project, request.user, project_id)
    _deny_unless(policies.can_manage_members(request.user, project))
    form = MemberForm(request.POST, actor=request.user, project=project)
    if form.is_valid():
        try:
            services.set_project_member(
                actor=request.user,
                project_id=project.id,
                user_id=form.cleaned_data["user"].id,
                role=form.cleaned_data["role"],
            )
        except DomainError as exc:
            _domain_error(request, exc, form, aliases={"user_id": "user"})
        else:
            messages.success(request, _("%(user)s added to the project.") % {"user": form.cleaned_data["user"]})
            return redirect("masterdata:project_detail", project_id=project.id)
    return _project_page(request, project, member_form=form)


@login_required
@require_POST
def project_member_remove(request, project_id, user_id):
    project = _fetch(selectors.access_project, request.user, project_id)
    _deny_unless(policies.can_manage_members(request.user, project))
    try:
        services.remove_project_member(actor=request.user, project_id=project.id, user_id=user_id)
    except DomainError as exc:
        _domain_error(request, exc)
    else:
        messages.success(request, _("Member removed."))
    return redirect("masterdata:project_detail", project_id=project.id)


def _import_page(request, *, allowed: bool, run, title: str, template_url: str, back: str):
    _deny_unless(allowed)
    form = ImportForm(request.POST or None, request.FILES or None)
    errors, summary = [], ""
    if request.method == "POST" and form.is_valid():
        try:
            result = run(form.cleaned_data["file"])
        except ValidationFailed as exc:
            errors, summary = exc.errors, exc.detail
        except DomainError as exc:
            _domain_error(request, exc, form)
        else:
            messages.success(request, _("%(count)d rows imported.") % {"count": result.created})
            return redirect(back)
    return render(
        request,
        "masterdata/import.html",
        {
            "form": form,
            "title": title,
            "template_url": template_url,
            "errors": errors,
            "summary": summary,
            "back": back,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_import(request):
    return _import_page(
        request,
        allowed=policies.can_import_projects(request.user),
        run=lambda f: services.import_projects_xlsx(actor=request.user, file=f),
        title=_("Import projects"),
        template_url="masterdata:project_template",
        back="masterdata:projects",
    )


@login_required
@require_GET
def project_template(request):
    _deny_unless(policies.can_import_projects(request.user))
    types = selectors.list_project_types(actor=request.user)
    return _xlsx_response(imports.project_template_xlsx(types), "eoms-projects-template.xlsx")


# ------------------------------------------------------------------------------------------ customers


@login_required
@require_GET
def customer_list(request):
    filters = {"q": request.GET.get("q", "").strip()[:100], "region": _choice_param(request, "region", Region)}
    qs = selectors.list_customers(actor=request.user, search=filters["q"], region=filters["region"])
    context = _list_context(request, qs, filters)
    context.update(regions=Region.choices, can_create=policies.can_edit_customer(request.user))
    return render(request, "masterdata/customer_list.html", context)


@login_required
@require_GET
def customer_detail(request, customer_id):
    customer = _fetch(selectors.access_customer, request.user, customer_id)
    return _customer_page(request, customer)


def _customer_page(request, customer, revealed: dict | None = None):
    """The customer page; encrypted values masked unless just revealed (key: field or contact id)."""
    revealed = revealed or {}
    contacts = list(customer.contacts.order_by("created_at", "id"))
    for contact in contacts:
        contact.phone_shown = revealed.get(str(contact.id)) or sensitive.masked(contact, "phone")
        contact.phone_revealed = str(contact.id) in revealed
    response = render(
        request,
        "masterdata/customer_detail.html",
        {
            "customer": customer,
            "id_card_shown": revealed.get("id_card_number") or sensitive.masked(customer, "id_card_number"),
            "id_card_revealed": "id_card_number" in revealed,
            "contacts": contacts,
            "projects": selectors.list_customer_projects(actor=request.user, customer=customer),
            "can_edit": policies.can_edit_customer(request.user),
            "can_delete": policies.can_delete_customer(request.user),
            "can_reveal": policies.can_reveal_sensitive(request.user),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


def _revealed_fragment(value: str) -> HttpResponse:
    response = render_to_string("masterdata/_revealed.html", {"value": value})
    return HttpResponse(response, headers={"Cache-Control": "no-store"})


@login_required
@require_POST
def customer_reveal(request, customer_id):
    """Show an ID card number or a contact's mobile in clear (administrator or finance; audited). With
    HTMX the clear value replaces the button; without, the page comes back with it shown."""
    customer = _fetch(selectors.access_customer, request.user, customer_id)
    field, contact_id = request.POST.get("field", ""), request.POST.get("contact_id") or None
    try:
        value = services.reveal_customer_value(
            actor=request.user, customer_id=customer.id, field=field, contact_id=contact_id
        )
    except DomainError as exc:
        if isinstance(exc, ValidationFailed):
            return HttpResponse(status=400)
        _domain_error(request, exc)
        return redirect("masterdata:customer_detail", customer_id=customer.id)
    if request.headers.get("HX-Request"):
        return _revealed_fragment(value)
    return _customer_page(request, customer, {contact_id if field == "phone" else field: value})


@login_required
@require_http_methods(["GET", "POST"])
def customer_create(request):
    _deny_unless(policies.can_edit_customer(request.user))
    form = CustomerForm(request.POST or None)
    formset = ContactFormSet(request.POST or None, prefix="contacts")
    return _form_page(
        request,
        form,
        lambda: services.create_customer(actor=request.user, **form.cleaned_data, contacts=contacts_of(formset)),
        success=lambda customer: _("Customer %(name)s created.") % {"name": customer.name},
        redirect_to=lambda customer: reverse("masterdata:customer_detail", args=[customer.id]),
        title=_("New customer"),
        cancel_url=reverse("masterdata:customers"),
        formset=formset,
        template="masterdata/customer_form.html",
        extra={"customer": None},
    )


def _reveal_for_editing(actor, obj) -> None:
    """An edit form shows the encrypted values in clear (to edit them): showing them is a reveal,
    audited like the reveal button's (one entry per value shown, none for empty ones)."""
    if isinstance(obj, Customer):
        if obj.id_card_number_enc:
            services.reveal_customer_value(actor=actor, customer_id=obj.id, field="id_card_number")
        for contact in obj.contacts.all():
            if contact.phone_enc:
                services.reveal_customer_value(actor=actor, customer_id=obj.id, field="phone", contact_id=contact.id)
        return
    for field in services.SUPPLIER_SENSITIVE:
        if getattr(obj, f"{field}_enc"):
            services.reveal_supplier_value(actor=actor, supplier_id=obj.id, field=field)


@login_required
@require_http_methods(["GET", "POST"])
def customer_edit(request, customer_id):
    customer = _fetch(selectors.access_customer, request.user, customer_id)
    _deny_unless(policies.can_edit_customer(request.user))
    if request.method == "GET":
        _reveal_for_editing(request.user, customer)
    form = CustomerForm(request.POST or None, instance=customer)
    initial = [
        {"name": c.name, "title": c.title, "phone": sensitive.clear(c, "phone"), "email": c.email}
        for c in customer.contacts.order_by("created_at", "id")
    ]
    formset = ContactFormSet(request.POST or None, prefix="contacts", initial=initial)

    def save():
        changes = form.changes()
        if formset.has_changed():
            changes["contacts"] = contacts_of(formset)
        return services.update_customer(
            actor=request.user,
            customer_id=customer.id,
            changes=changes,
            expected_version=form.cleaned_data["version"],
        )

    return _form_page(
        request,
        form,
        save,
        success=lambda _saved: _("Customer %(name)s saved.") % {"name": customer.name},
        redirect_to=lambda _saved: reverse("masterdata:customer_detail", args=[customer.id]),
        title=_("Edit customer"),
        cancel_url=reverse("masterdata:customer_detail", args=[customer.id]),
        stale_label=customer.name,
        formset=formset,
        template="masterdata/customer_form.html",
        extra={"customer": customer},
    )


@login_required
@require_POST
def customer_delete(request, customer_id):
    customer = _fetch(selectors.access_customer, request.user, customer_id)
    _deny_unless(policies.can_delete_customer(request.user))
    try:
        services.delete_customer(actor=request.user, customer_id=customer.id)
    except DomainError as exc:
        _domain_error(request, exc)
        return redirect("masterdata:customer_detail", customer_id=customer.id)
    messages.success(request, _("Customer %(name)s deleted.") % {"name": customer.name})
    return redirect("masterdata:customers")


@login_required
@require_http_methods(["GET", "POST"])
def customer_import(request):
    return _import_page(
        request,
        allowed=policies.can_import_customers(request.user),
        run=lambda f: services.import_customers_xlsx(actor=request.user, file=f),
        title=_("Import customers"),
        template_url="masterdata:customer_template",
        back="masterdata:customers",
    )


@login_required
@require_GET
def customer_template(request):
    _deny_unless(policies.can_import_customers(request.user))
    return _xlsx_response(imports.customer_template_xlsx(), "eoms-customers-template.xlsx")


# ------------------------------------------------------------------------------------------ suppliers


@login_required
@require_GET
def supplier_list(request):
    filters = {
        "q": request.GET.get("q", "").strip()[:100],
        "kind": _choice_param(request, "kind", SupplierKind),
        "region": _choice_param(request, "region", Region),
    }
    qs = selectors.list_suppliers(
        actor=request.user, search=filters["q"], kind=filters["kind"], region=filters["region"]
    )
    context = _list_context(request, qs, filters)
    for supplier in context["page_obj"]:
        supplier.contact_phone_masked = sensitive.masked(supplier, "contact_phone")
    context.update(
        regions=Region.choices, kinds=SupplierKind.choices, can_create=policies.can_edit_supplier(request.user)
    )
    return render(request, "masterdata/supplier_list.html", context)


@login_required
@require_GET
def supplier_detail(request, supplier_id):
    supplier = _fetch(selectors.access_supplier, request.user, supplier_id)
    return _supplier_page(request, supplier)


def _supplier_page(request, supplier, revealed: dict | None = None):
    revealed = revealed or {}
    shown = {f: revealed.get(f) or sensitive.masked(supplier, f) for f in services.SUPPLIER_SENSITIVE}
    response = render(
        request,
        "masterdata/supplier_detail.html",
        {
            "supplier": supplier,
            "shown": shown,
            "revealed": revealed,
            "can_edit": policies.can_edit_supplier(request.user),
            "can_reveal": policies.can_reveal_sensitive(request.user),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def supplier_reveal(request, supplier_id):
    """Show a supplier's contact mobile or bank account number in clear (administrator or finance; audited)."""
    supplier = _fetch(selectors.access_supplier, request.user, supplier_id)
    field = request.POST.get("field", "")
    try:
        value = services.reveal_supplier_value(actor=request.user, supplier_id=supplier.id, field=field)
    except DomainError as exc:
        if isinstance(exc, ValidationFailed):
            return HttpResponse(status=400)
        _domain_error(request, exc)
        return redirect("masterdata:supplier_detail", supplier_id=supplier.id)
    if request.headers.get("HX-Request"):
        return _revealed_fragment(value)
    return _supplier_page(request, supplier, {field: value})


@login_required
@require_http_methods(["GET", "POST"])
def supplier_create(request):
    _deny_unless(policies.can_edit_supplier(request.user))
    form = SupplierForm(request.POST or None)
    return _form_page(
        request,
        form,
        lambda: services.create_supplier(actor=request.user, **form.cleaned_data),
        success=lambda supplier: _("Supplier %(name)s created.") % {"name": supplier.name},
        redirect_to=lambda supplier: reverse("masterdata:supplier_detail", args=[supplier.id]),
        title=_("New supplier"),
        cancel_url=reverse("masterdata:suppliers"),
    )


@login_required
@require_http_methods(["GET", "POST"])
def supplier_edit(request, supplier_id):
    supplier = _fetch(selectors.access_supplier, request.user, supplier_id)
    _deny_unless(policies.can_edit_supplier(request.user))
    if request.method == "GET":
        _reveal_for_editing(request.user, supplier)
    form = SupplierForm(request.POST or None, instance=supplier)
    return _form_page(
        request,
        form,
        lambda: services.update_supplier(
            actor=request.user,
            supplier_id=supplier.id,
            changes=form.changes(),
            expected_version=form.cleaned_data["version"],
        ),
        success=lambda _saved: _("Supplier %(name)s saved.") % {"name": supplier.name},
        redirect_to=lambda _saved: reverse("masterdata:supplier_detail", args=[supplier.id]),
        title=_("Edit supplier"),
        cancel_url=reverse("masterdata:supplier_detail", args=[supplier.id]),
        stale_label=supplier.name,
    )


# ------------------------------------------------------------------------------------------ project types


@login_required
@require_http_methods(["GET", "POST"])
def project_types(request):
    can_create = policies.can_create_project_type(request.user)
    form = ProjectTypeForm(request.POST or None)
    if request.method == "POST":
        _deny_unless(can_create)
        if form.is_valid():
            try:
                kind = services.create_project_type(actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                _domain_error(request, exc, form)
            else:
                messages.success(request, _("Project type %(name)s created.") % {"name": kind.name})
                return redirect("masterdata:project_types")
    return render(
        request,
        "masterdata/project_types.html",
        {"types": selectors.list_project_types(actor=request.user), "form": form, "can_create": can_create},
    )
