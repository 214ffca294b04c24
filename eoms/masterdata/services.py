"""Every write of master data: customers (with contacts), project types, projects (sites) and
suppliers, plus the all-or-nothing Excel imports. One transaction each; every change leaves exactly
one audit entry and one outbox message (a project with a manager also records the manager's
membership, through accounts.services).

`actor` None is the system (demo loader, migrations); otherwise writes are the administrator's,
except that a project's manager may keep its site fields up to date (policies.py). Updates are a
compare-and-set on `version`: a stale version answers 409 (code masterdata.stale)."""

import re
import uuid
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Model, ProtectedError
from django.utils import timezone
from django.utils.translation import gettext as _
from stdnum.cn import ric as ric_number
from stdnum.cn import uscc as uscc_number
from stdnum.exceptions import InvalidChecksum

from eoms.accounts import services as account_services
from eoms.accounts.roles import ProjectRole, Role
from eoms.accounts.selectors import get_active_user, has_role
from eoms.core import audit
from eoms.core.audit import normalise
from eoms.core.events import emit

from . import events, policies, sensitive
from .errors import (
    CustomerNotFound,
    MasterDataInUse,
    MasterDataInvalid,
    MasterDataPermissionDenied,
    MemberNotFound,
    ProjectNotFound,
    StaleMasterData,
    SupplierNotFound,
)
from .imports import CUSTOMER_COLUMNS, PROJECT_COLUMNS, ImportResult, import_rows, region_code
from .models import Customer, CustomerContact, CustomerGrade, Project, ProjectType, Region, Supplier, SupplierKind
from .selectors import access_customer, access_project, access_supplier

__all__ = [
    "create_customer",
    "update_customer",
    "delete_customer",
    "create_project_type",
    "create_project",
    "update_project",
    "set_project_member",
    "remove_project_member",
    "create_supplier",
    "update_supplier",
    "import_customers_xlsx",
    "import_projects_xlsx",
    "check_uscc",
    "reveal_customer_value",
    "reveal_supplier_value",
    "ImportResult",
    "MAX_CONTACTS",
]

MAX_CONTACTS = 20
_MOBILE = re.compile(r"^1\d{10}$")
_BANK_ACCOUNT = re.compile(r"^\d{12,19}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_COORD_PLACES = Decimal("0.000001")
MIN_GEOFENCE_M, MAX_GEOFENCE_M = 10, 50000


# ------------------------------------------------------------------------------------------ validation


class _Errors:
    """Field problems collected while cleaning, so that a caller hears of all of them at once."""

    def __init__(self):
        self.items: list[dict] = []

    def add(self, field: str, message) -> None:
        self.items.append({"field": field, "message": str(message)})

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in self.items)
            raise MasterDataInvalid(detail, errors=self.items)


def check_uscc(value) -> tuple[str, str | None]:
    """A unified social credit code in its one spelling (upper case, no spaces or dashes) and the
    problem with it, if any (GB 32100-2015: 18 characters, the last a check character)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "", _("This field is required.")
    if not isinstance(value, str):
        return "", _("Must be text.")
    number = uscc_number.compact(value)
    if len(number) != 18:
        return number, _("A unified social credit code has 18 characters; this one has %(count)d.") % {
            "count": len(number)
        }
    try:
        uscc_number.validate(number)
    except InvalidChecksum:
        return number, _(
            "The check character “%(bad)s” does not match the first 17 characters (they give “%(good)s”); "
            "look for a typo."
        ) % {"bad": number[-1], "good": uscc_number.calc_check_digit(number[:17])}
    except Exception:  # InvalidFormat and friends from stdnum
        return number, _(
            "Not a unified social credit code: the first 8 characters are digits, the rest digits or the "
            "capital letters A–Y without I, O, S, V and Z."
        )
    return number, None


def _text(errs: _Errors, field: str, value, *, max_length: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        errs.add(field, _("Must be text."))
        return ""
    text = value.strip()
    if required and not text:
        errs.add(field, _("This field is required."))
    elif len(text) > max_length:
        errs.add(field, _("At most %(max)d characters (this has %(count)d).") % {"max": max_length, "count": len(text)})
    return text


def _choice(errs: _Errors, field: str, value, choices) -> str:
    if value not in choices.values:
        errs.add(
            field,
            _("“%(value)s” is not one of: %(choices)s.")
            % {"value": value, "choices": ", ".join(f"{v} ({label})" for v, label in choices.choices)},
        )
        return ""
    return value


def _mobile(errs: _Errors, field: str, value) -> str:
    text = _text(errs, field, value, max_length=20)
    text = re.sub(r"[\s-]", "", text)
    if text.startswith("+86"):
        text = text[3:]
    if text and not _MOBILE.match(text):
        errs.add(field, _("A mobile number has 11 digits and starts with 1, e.g. 13812345678."))
    return text


def _id_card(errs: _Errors, field: str, value) -> str:
    """A resident identity card number (GB 11643-1999, 18 characters, the last a check character)."""
    text = _text(errs, field, value, max_length=40)
    if not text:
        return ""
    number = ric_number.compact(re.sub(r"[\s-]", "", text)).upper()
    if not ric_number.is_valid(number) or len(number) != 18:
        errs.add(field, _("Not a valid resident identity card number: 18 characters, the last a check digit or X."))
    return number


def _bank_account(errs: _Errors, field: str, value) -> str:
    text = re.sub(r"[\s-]", "", _text(errs, field, value, max_length=40))
    if text and not _BANK_ACCOUNT.match(text):
        errs.add(field, _("A bank account number has 12 to 19 digits."))
    return text


def _email(errs: _Errors, field: str, value) -> str:
    text = _text(errs, field, value, max_length=254)
    if text:
        try:
            validate_email(text)
        except ValidationError:
            errs.add(field, _("Enter a valid email address."))
    return text


def _coordinate(errs: _Errors, field: str, value, limit: int) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        errs.add(field, _("Enter a number of degrees, e.g. 31.230416."))
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError, TypeError):
        errs.add(field, _("Enter a number of degrees, e.g. 31.230416."))
        return None
    if not number.is_finite() or not -limit <= number <= limit:
        errs.add(field, _("Must be between -%(limit)d and %(limit)d degrees.") % {"limit": limit})
        return None
    return number.quantize(_COORD_PLACES, rounding=ROUND_HALF_UP)


def _radius(errs: _Errors, field: str, value) -> int:
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
        if number != number.to_integral_value():
            raise ValueError
        radius = int(number)
    except (InvalidOperation, ValueError, TypeError):
        errs.add(field, _("Enter a whole number of metres."))
        return 0
    if not MIN_GEOFENCE_M <= radius <= MAX_GEOFENCE_M:
        errs.add(
            field,
            _("Must be from %(min)d to %(max)d metres.") % {"min": MIN_GEOFENCE_M, "max": MAX_GEOFENCE_M},
        )
    return radius


def _bool(errs: _Errors, field: str, value) -> bool:
    if not isinstance(value, bool):
        errs.add(field, _("Must be true or false."))
        return False
    return value


def _instance(errs: _Errors, field: str, value, model: type[Model], *, required: bool = True, **filters):
    """A row given as an instance or an id."""
    if value is None or value == "":
        if required:
            errs.add(field, _("This field is required."))
        return None
    if isinstance(value, model):
        return value
    try:
        return model.objects.get(pk=value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)), **filters)
    except (model.DoesNotExist, ValueError, TypeError, AttributeError):
        errs.add(field, _("No such %(what)s.") % {"what": model._meta.verbose_name})
        return None


def _manager(errs: _Errors, field: str, value):
    if value is None or value == "":
        return None
    user = value if getattr(value, "_meta", None) and value._meta.model_name == "user" else get_active_user(value)
    if user is None or not user.is_active:
        errs.add(field, _("No such active user."))
        return None
    if not has_role(user, Role.PROJECT_MANAGER):
        errs.add(field, _("%(user)s is not a project manager.") % {"user": user})
        return None
    return user


def _uscc_field(errs: _Errors, field: str, value, model: type[Model], *, exclude_id=None) -> str:
    number, problem = check_uscc(value)
    if problem:
        errs.add(field, problem)
        return number
    clash = model.objects.filter(uscc=number).exclude(pk=exclude_id).first()
    if clash is not None:
        errs.add(
            field,
            _("%(what)s “%(name)s” already has this credit code.")
            % {"what": str(model._meta.verbose_name).capitalize(), "name": clash.name},
        )
    return number


def _unknown_fields(changes: dict, allowed) -> None:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise MasterDataInvalid(
            _("These fields cannot be changed here: %(fields)s.") % {"fields": ", ".join(unknown)},
            errors=[{"field": f, "message": _("Not a field that can be changed.")} for f in unknown],
        )


def _repr(value):
    if isinstance(value, Model):
        return getattr(value, "username", None) or str(value)
    return normalise(value)


def _require(allowed: bool, message: str) -> None:
    if not allowed:
        raise MasterDataPermissionDenied(message)


def _compare_and_set(model: type[Model], obj: Model, fields: dict, label: str) -> None:
    """UPDATE ... WHERE id = ? AND version = ?; zero rows means someone else won the race."""
    updated = model.objects.filter(pk=obj.pk, version=obj.version).update(
        **fields, version=F("version") + 1, updated_at=timezone.now()
    )
    if not updated:
        raise StaleMasterData(_("%(label)s was changed by someone else; reload it.") % {"label": label})


def _check_version(obj: Model, expected_version, label: str) -> None:
    if expected_version is not None and expected_version != obj.version:
        raise StaleMasterData(
            _("%(label)s is at version %(current)s, not %(expected)s; reload it.")
            % {"label": label, "current": obj.version, "expected": expected_version},
            current_version=obj.version,
        )


def _save_new(obj: Model, unique_field: str) -> None:
    """Insert; a concurrent insert of the same unique value (past our check) is a field error."""
    try:
        with transaction.atomic():
            obj.save(force_insert=True)
    except IntegrityError:
        raise MasterDataInvalid(
            errors=[{"field": unique_field, "message": _("Another record with this value was just saved.")}]
        )


# ------------------------------------------------------------------------------------------ customers

CUSTOMER_FIELDS = ("name", "uscc", "region", "grade", "address", "notes", "id_card_number", "contacts")


def _clean_contacts(errs: _Errors, contacts) -> list[dict]:
    if contacts is None:
        return []
    if isinstance(contacts, dict | str) or not hasattr(contacts, "__iter__"):
        errs.add("contacts", _("Give a list of contacts."))
        return []
    contacts = list(contacts)
    if len(contacts) > MAX_CONTACTS:
        errs.add("contacts", _("At most %(max)d contacts.") % {"max": MAX_CONTACTS})
        return []
    cleaned = []
    for i, contact in enumerate(contacts):
        if not isinstance(contact, dict):
            errs.add(f"contacts.{i}", _("Each contact has a name, title, mobile and email."))
            continue
        unknown = set(contact) - {"name", "title", "phone", "email"}
        if unknown:
            errs.add(f"contacts.{i}", _("Unknown contact fields: %(fields)s.") % {"fields": ", ".join(sorted(unknown))})
        cleaned.append(
            {
                "name": _text(errs, f"contacts.{i}.name", contact.get("name"), max_length=100, required=True),
                "title": _text(errs, f"contacts.{i}.title", contact.get("title"), max_length=100),
                "phone": _mobile(errs, f"contacts.{i}.phone", contact.get("phone")),
                "email": _email(errs, f"contacts.{i}.email", contact.get("email")),
            }
        )
    return cleaned


def _clean_customer(errs: _Errors, data: dict, *, exclude_id=None) -> dict:
    """Clean the customer fields present in `data`."""
    cleaned = {}
    for field, value in data.items():
        if field == "name":
            cleaned[field] = _text(errs, field, value, max_length=200, required=True)
        elif field == "uscc":
            cleaned[field] = _uscc_field(errs, field, value, Customer, exclude_id=exclude_id)
        elif field == "region":
            cleaned[field] = _choice(errs, field, value, Region)
        elif field == "grade":
            cleaned[field] = _choice(errs, field, value, CustomerGrade)
        elif field == "address":
            cleaned[field] = _text(errs, field, value, max_length=300)
        elif field == "notes":
            cleaned[field] = _text(errs, field, value, max_length=5000)
        elif field == "id_card_number":
            cleaned[field] = _id_card(errs, field, value)
        elif field == "contacts":
            cleaned[field] = _clean_contacts(errs, value)
    return cleaned


def _seal(obj: Model, field: str, value: str) -> None:
    for column, sealed_value in sensitive.sealed(obj, field, value).items():
        setattr(obj, column, sealed_value)


def _new_contacts(customer: Customer, contacts: list[dict]) -> None:
    rows = []
    for c in contacts:
        contact = CustomerContact(customer=customer, name=c["name"], title=c["title"], email=c["email"])
        _seal(contact, "phone", c["phone"])
        rows.append(contact)
    CustomerContact.objects.bulk_create(rows)


def _masked_contacts(contacts: list[dict]) -> list[dict]:
    """Contacts as the audit keeps them: the mobile masked."""
    return [{**c, "phone": sensitive.mask_value(CustomerContact, "phone", c["phone"])} for c in contacts]


def _create_customer(*, actor, cleaned: dict) -> Customer:
    contacts = cleaned.pop("contacts", [])
    id_card = cleaned.pop("id_card_number", "")
    customer = Customer(**cleaned)
    _seal(customer, "id_card_number", id_card)
    _save_new(customer, "uscc")
    _new_contacts(customer, contacts)
    emit(
        events.CustomerCreated(customer_id=customer.id, name=customer.name, uscc=customer.uscc, region=customer.region),
        actor=actor,
        object_repr=customer.name,
        changes={
            **cleaned,
            "id_card_number": sensitive.mask_value(Customer, "id_card_number", id_card),
            "contacts": _masked_contacts(contacts),
        },
    )
    return customer


@transaction.atomic
def create_customer(
    *, actor, name, uscc, region, grade="C", address="", notes="", id_card_number="", contacts=()
) -> Customer:
    """Register a customer with its contacts (dicts of name, title, phone, email). The credit code
    must be valid and not yet registered; every problem is reported at once (422)."""
    _require(policies.can_edit_customer(actor), _("Only an administrator may add customers."))
    errs = _Errors()
    cleaned = _clean_customer(
        errs,
        {
            "name": name,
            "uscc": uscc,
            "region": region,
            "grade": grade,
            "address": address,
            "notes": notes,
            "id_card_number": id_card_number,
            "contacts": contacts,
        },
    )
    errs.raise_if_any()
    return _create_customer(actor=actor, cleaned=cleaned)


def _contact_dicts(customer: Customer) -> list[dict]:
    return [
        {"name": c.name, "title": c.title, "phone": sensitive.clear(c, "phone"), "email": c.email}
        for c in customer.contacts.order_by("created_at", "id")
    ]


def _get_for_update(model: type[Model], actor, object_id, access, not_found):
    """The row, locked, if `actor` may see it (the system sees every row)."""
    if actor is not None:
        access(actor, object_id)
    try:
        pk = object_id if isinstance(object_id, uuid.UUID) else uuid.UUID(str(object_id))
        return model.objects.select_for_update().get(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError, AttributeError):
        raise not_found(_("No such %(what)s.") % {"what": model._meta.verbose_name})


@transaction.atomic
def update_customer(*, actor, customer_id, changes: dict, expected_version=None) -> Customer:
    """Change fields of a customer (`contacts` replaces the whole list). Only changed fields are
    written and audited as {field: [before, after]}; nothing changed writes nothing."""
    customer = _get_for_update(Customer, actor, customer_id, access_customer, CustomerNotFound)
    _require(policies.can_edit_customer(actor), _("Only an administrator may change customers."))
    _check_version(customer, expected_version, customer.name)
    _unknown_fields(changes, CUSTOMER_FIELDS)
    errs = _Errors()
    cleaned = _clean_customer(errs, changes, exclude_id=customer.pk)
    errs.raise_if_any()
    diff, fields = {}, {}
    for field, value in cleaned.items():
        if field == "contacts":
            before = _contact_dicts(customer)
            if before != value:
                diff[field] = [_repr(_masked_contacts(before)), _repr(_masked_contacts(value))]
        elif field == "id_card_number":
            before = sensitive.clear(customer, field)
            if before != value:
                diff[field] = [sensitive.mask_value(Customer, field, v) for v in (before, value)]
                fields.update(sensitive.sealed(customer, field, value))
        elif getattr(customer, field) != value:
            diff[field] = [_repr(getattr(customer, field)), _repr(value)]
            fields[field] = value
    if not diff:
        return customer
    _compare_and_set(Customer, customer, fields, customer.name)
    if "contacts" in diff:
        customer.contacts.all().delete()
        _new_contacts(customer, cleaned["contacts"])
    customer.refresh_from_db()
    emit(
        events.CustomerUpdated(customer_id=customer.id, fields=tuple(sorted(diff))),
        actor=actor,
        object_repr=customer.name,
        changes=diff,
    )
    return customer


@transaction.atomic
def delete_customer(*, actor, customer_id) -> None:
    """Delete a customer and its contacts. A customer that projects or orders refer to stays (409)."""
    customer = _get_for_update(Customer, actor, customer_id, access_customer, CustomerNotFound)
    _require(policies.can_delete_customer(actor), _("Only an administrator may delete customers."))
    pk, name, code = customer.pk, customer.name, customer.uscc
    try:
        with transaction.atomic():
            customer.delete()
    except ProtectedError:
        projects = Project.objects.filter(customer_id=pk).count()
        orders = Customer.orders.rel.related_model.objects.filter(customer_id=pk).count()
        raise MasterDataInUse(
            _(
                "Customer “%(name)s” has %(projects)d project(s) and %(orders)d order(s); it cannot be deleted "
                "while they refer to it."
            )
            % {"name": name, "projects": projects, "orders": orders},
            projects=projects,
            orders=orders,
        )
    emit(events.CustomerDeleted(customer_id=pk, uscc=code), actor=actor, object_repr=name, changes={"uscc": code})


# ------------------------------------------------------------------------------------------ project types


@transaction.atomic
def create_project_type(*, actor, code, name, name_en="") -> ProjectType:
    """A new kind of work. Its code (letters, digits, '.', '_' or '-') is unique and never reused."""
    _require(policies.can_create_project_type(actor), _("Only an administrator may add project types."))
    errs = _Errors()
    code = _text(errs, "code", code, max_length=40, required=True)
    if code and not errs and not _CODE.match(code):
        errs.add("code", _("Use letters, digits, '.', '_' and '-' only, starting with a letter or digit."))
    elif code and ProjectType.objects.filter(code__iexact=code).exists():
        errs.add("code", _("A project type with this code already exists."))
    name = _text(errs, "name", name, max_length=100, required=True)
    name_en = _text(errs, "name_en", name_en, max_length=100)
    errs.raise_if_any()
    project_type = ProjectType(code=code, name=name, name_en=name_en)
    _save_new(project_type, "code")
    emit(
        events.ProjectTypeCreated(project_type_id=project_type.id, code=code),
        actor=actor,
        object_repr=name,
        changes={"code": code, "name": name, "name_en": name_en},
    )
    return project_type


# ------------------------------------------------------------------------------------------ projects

PROJECT_FIELDS = (
    "code",
    "name",
    "customer",
    "project_type",
    "region",
    "province",
    "city",
    "address",
    "latitude",
    "longitude",
    "geofence_radius_m",
    "manager",
    "is_active",
)


def _clean_project(errs: _Errors, data: dict, *, exclude_id=None) -> dict:
    cleaned = {}
    for field, value in data.items():
        if field == "code":
            code = _text(errs, field, value, max_length=40, required=True)
            if code and not _CODE.match(code):
                errs.add(field, _("Use letters, digits, '.', '_' and '-' only, starting with a letter or digit."))
            elif code and Project.objects.filter(code__iexact=code).exclude(pk=exclude_id).exists():
                errs.add(field, _("A project with code %(code)s already exists.") % {"code": code})
            cleaned[field] = code
        elif field == "name":
            cleaned[field] = _text(errs, field, value, max_length=200, required=True)
        elif field == "customer":
            cleaned[field] = _instance(errs, field, value, Customer)
        elif field == "project_type":
            cleaned[field] = _instance(errs, field, value, ProjectType)
        elif field == "region":
            cleaned[field] = _choice(errs, field, value, Region)
        elif field in ("province", "city"):
            cleaned[field] = _text(errs, field, value, max_length=40)
        elif field == "address":
            cleaned[field] = _text(errs, field, value, max_length=300)
        elif field == "latitude":
            cleaned[field] = _coordinate(errs, field, value, 90)
        elif field == "longitude":
            cleaned[field] = _coordinate(errs, field, value, 180)
        elif field == "geofence_radius_m":
            cleaned[field] = _radius(errs, field, value)
        elif field == "manager":
            cleaned[field] = _manager(errs, field, value)
        elif field == "is_active":
            cleaned[field] = _bool(errs, field, value)
    return cleaned


def _check_site(errs: _Errors, latitude, longitude) -> None:
    if (latitude is None) != (longitude is None):
        errs.add("latitude" if latitude is None else "longitude", _("Give both latitude and longitude, or neither."))


def _create_project(*, actor, cleaned: dict) -> Project:
    project = Project(**cleaned)
    _save_new(project, "code")
    manager = cleaned.get("manager")
    emit(
        events.ProjectCreated(
            project_id=project.id,
            code=project.code,
            customer_id=project.customer_id,
            region=project.region,
            manager_id=manager.pk if manager else None,
        ),
        actor=actor,
        object_repr=str(project),
        changes={field: _repr(value) for field, value in cleaned.items()},
    )
    if manager is not None:
        account_services.set_membership(actor=None, user=manager, project=project, role=ProjectRole.PM)
    return project


@transaction.atomic
def create_project(
    *,
    actor,
    code,
    name,
    customer,
    project_type,
    region,
    province="",
    city="",
    address="",
    latitude=None,
    longitude=None,
    geofence_radius_m=500,
    manager=None,
) -> Project:
    """Open a project (a site) for a customer. Its code is unique; coordinates are WGS-84 degrees,
    both or neither. A manager (a project manager) becomes a member with project role "pm"."""
    _require(policies.can_create_project(actor), _("Only an administrator may add projects."))
    errs = _Errors()
    cleaned = _clean_project(
        errs,
        {
            "code": code,
            "name": name,
            "customer": customer,
            "project_type": project_type,
            "region": region,
            "province": province,
            "city": city,
            "address": address,
            "latitude": latitude,
            "longitude": longitude,
            "geofence_radius_m": geofence_radius_m,
            "manager": manager,
        },
    )
    if "latitude" not in {e["field"] for e in errs.items} and "longitude" not in {e["field"] for e in errs.items}:
        _check_site(errs, cleaned["latitude"], cleaned["longitude"])
    errs.raise_if_any()
    return _create_project(actor=actor, cleaned=cleaned)


@transaction.atomic
def update_project(*, actor, project_id, changes: dict, expected_version=None) -> Project:
    """Change a project. The administrator may change every field; the project's manager its site
    (name, address, coordinates, geofence). A new manager also becomes a member with role "pm"."""
    project = _get_for_update(Project, actor, project_id, access_project, ProjectNotFound)
    allowed = policies.editable_project_fields(actor, project)
    _require(bool(allowed), _("You may not change project %(code)s.") % {"code": project.code})
    _check_version(project, expected_version, project.code)
    _unknown_fields(changes, PROJECT_FIELDS)
    refused = sorted(set(changes) - allowed)
    if refused:
        raise MasterDataPermissionDenied(
            _("Only an administrator may change these fields of project %(code)s: %(fields)s.")
            % {"code": project.code, "fields": ", ".join(refused)}
        )
    errs = _Errors()
    cleaned = _clean_project(errs, changes, exclude_id=project.pk)
    if not errs:
        _check_site(errs, cleaned.get("latitude", project.latitude), cleaned.get("longitude", project.longitude))
    errs.raise_if_any()
    diff, fields = {}, {}
    for field, value in cleaned.items():
        before = getattr(project, field)
        if before != value:
            diff[field] = [_repr(before), _repr(value)]
            fields[field] = value
    if not diff:
        return project
    _compare_and_set(Project, project, fields, project.code)
    project.refresh_from_db()
    emit(
        events.ProjectUpdated(project_id=project.id, code=project.code, fields=tuple(sorted(diff))),
        actor=actor,
        object_repr=str(project),
        changes=diff,
    )
    if "manager" in diff and project.manager is not None:
        account_services.set_membership(actor=None, user=project.manager, project=project, role=ProjectRole.PM)
    return project


def set_project_member(*, actor, project_id, user_id, role=ProjectRole.VIEWER):
    """Put an active user on a project with a project role (or change the role): for an administrator
    or the project's manager. The membership is written and audited by accounts.services."""
    with transaction.atomic():
        project = _get_for_update(Project, actor, project_id, access_project, ProjectNotFound)
        _require(
            policies.can_manage_members(actor, project),
            _("Only an administrator or the project's manager may change its members."),
        )
        user = get_active_user(user_id)
        if user is None:
            raise MasterDataInvalid(errors=[{"field": "user_id", "message": _("No such active user.")}])
        if role not in ProjectRole.values:
            raise MasterDataInvalid(
                errors=[
                    {
                        "field": "role",
                        "message": _("A project role is one of: %(roles)s.") % {"roles": ", ".join(ProjectRole.values)},
                    }
                ]
            )
        if user.pk == project.manager_id and role != ProjectRole.PM:
            raise MasterDataInUse(
                _("%(user)s manages project %(code)s and keeps the project role “pm”; change the manager first.")
                % {"user": user, "code": project.code}
            )
        return account_services.set_membership(actor=actor, user=user, project=project, role=role)


def remove_project_member(*, actor, project_id, user_id) -> None:
    """Take a user off a project (for an administrator or the project's manager). The project's
    manager stays a member: change the manager first (409)."""
    with transaction.atomic():
        project = _get_for_update(Project, actor, project_id, access_project, ProjectNotFound)
        _require(
            policies.can_manage_members(actor, project),
            _("Only an administrator or the project's manager may change its members."),
        )
        membership = project.memberships.select_related("user").filter(user_id=_as_uuid(user_id)).first()
        if membership is None:
            raise MemberNotFound(_("This user is not a member of project %(code)s.") % {"code": project.code})
        if membership.user_id == project.manager_id:
            raise MasterDataInUse(
                _("%(user)s manages project %(code)s; choose another manager before removing them.")
                % {"user": membership.user, "code": project.code}
            )
        account_services.remove_membership(actor=actor, user=membership.user, project=project)


def _as_uuid(value):
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


# ------------------------------------------------------------------------------------------ suppliers

SUPPLIER_FIELDS = (
    "name",
    "uscc",
    "kind",
    "region",
    "contact_name",
    "contact_phone",
    "bank_account",
    "qualification",
    "is_active",
)
SUPPLIER_SENSITIVE = ("contact_phone", "bank_account")


def _clean_supplier(errs: _Errors, data: dict, *, exclude_id=None) -> dict:
    cleaned = {}
    for field, value in data.items():
        if field == "name":
            cleaned[field] = _text(errs, field, value, max_length=200, required=True)
        elif field == "uscc":
            cleaned[field] = _uscc_field(errs, field, value, Supplier, exclude_id=exclude_id)
        elif field == "kind":
            cleaned[field] = _choice(errs, field, value, SupplierKind)
        elif field == "region":
            cleaned[field] = _choice(errs, field, value, Region)
        elif field == "contact_name":
            cleaned[field] = _text(errs, field, value, max_length=100)
        elif field == "contact_phone":
            cleaned[field] = _mobile(errs, field, value)
        elif field == "bank_account":
            cleaned[field] = _bank_account(errs, field, value)
        elif field == "qualification":
            cleaned[field] = _text(errs, field, value, max_length=200)
        elif field == "is_active":
            cleaned[field] = _bool(errs, field, value)
    return cleaned


@transaction.atomic
def create_supplier(
    *, actor, name, uscc, kind, region, contact_name="", contact_phone="", bank_account="", qualification=""
) -> Supplier:
    """Register a supplier or subcontractor; its credit code is valid and not yet registered."""
    _require(policies.can_edit_supplier(actor), _("Only an administrator may add suppliers."))
    errs = _Errors()
    cleaned = _clean_supplier(
        errs,
        {
            "name": name,
            "uscc": uscc,
            "kind": kind,
            "region": region,
            "contact_name": contact_name,
            "contact_phone": contact_phone,
            "bank_account": bank_account,
            "qualification": qualification,
        },
    )
    errs.raise_if_any()
    supplier = Supplier(**{f: v for f, v in cleaned.items() if f not in SUPPLIER_SENSITIVE})
    for field in SUPPLIER_SENSITIVE:
        _seal(supplier, field, cleaned[field])
    _save_new(supplier, "uscc")
    emit(
        events.SupplierCreated(supplier_id=supplier.id, name=supplier.name, uscc=supplier.uscc, kind=supplier.kind),
        actor=actor,
        object_repr=supplier.name,
        changes={f: sensitive.mask_value(Supplier, f, v) if f in SUPPLIER_SENSITIVE else v for f, v in cleaned.items()},
    )
    return supplier


@transaction.atomic
def update_supplier(*, actor, supplier_id, changes: dict, expected_version=None) -> Supplier:
    """Change fields of a supplier; audited as {field: [before, after]}."""
    supplier = _get_for_update(Supplier, actor, supplier_id, access_supplier, SupplierNotFound)
    _require(policies.can_edit_supplier(actor), _("Only an administrator may change suppliers."))
    _check_version(supplier, expected_version, supplier.name)
    _unknown_fields(changes, SUPPLIER_FIELDS)
    errs = _Errors()
    cleaned = _clean_supplier(errs, changes, exclude_id=supplier.pk)
    errs.raise_if_any()
    diff, fields = {}, {}
    for field, value in cleaned.items():
        if field in SUPPLIER_SENSITIVE:
            before = sensitive.clear(supplier, field)
            if before != value:
                diff[field] = [sensitive.mask_value(Supplier, field, v) for v in (before, value)]
                fields.update(sensitive.sealed(supplier, field, value))
        elif getattr(supplier, field) != value:
            diff[field] = [_repr(getattr(supplier, field)), _repr(value)]
            fields[field] = value
    if not diff:
        return supplier
    _compare_and_set(Supplier, supplier, fields, supplier.name)
    supplier.refresh_from_db()
    emit(
        events.SupplierUpdated(supplier_id=supplier.id, fields=tuple(sorted(diff))),
        actor=actor,
        object_repr=supplier.name,
        changes=diff,
    )
    return supplier


# ------------------------------------------------------------------------------------------ reveal

CUSTOMER_REVEALABLE = ("id_card_number", "phone")


def _reveal(actor, obj: Model, field: str, *, object_type: str, object_id, object_repr: str, extra: dict) -> str:
    _require(
        policies.can_reveal_sensitive(actor),
        _("Only an administrator or finance may see this value in clear."),
    )
    value = sensitive.clear(obj, field)
    audit.record(
        actor=actor,
        action="masterdata.sensitive_revealed",
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        changes={"field": field, **extra},
    )
    return value


@transaction.atomic
def reveal_customer_value(*, actor, customer_id, field: str, contact_id=None) -> str:
    """The clear value of a customer's ID card number (field "id_card_number") or of one contact's
    mobile (field "phone" with `contact_id`), for an administrator or finance; one audit entry each."""
    customer = access_customer(actor, customer_id)
    if field not in CUSTOMER_REVEALABLE:
        raise MasterDataInvalid(errors=[{"field": "field", "message": _("Not a field that can be revealed.")}])
    if field == "phone":
        contact = customer.contacts.filter(pk=_as_uuid(contact_id)).first() if contact_id else None
        if contact is None:
            raise MasterDataInvalid(errors=[{"field": "contact_id", "message": _("No such contact.")}])
        return _reveal(
            actor,
            contact,
            "phone",
            object_type="masterdata.customer",
            object_id=customer.pk,
            object_repr=customer.name,
            extra={"contact_id": str(contact.pk)},
        )
    return _reveal(
        actor,
        customer,
        field,
        object_type="masterdata.customer",
        object_id=customer.pk,
        object_repr=customer.name,
        extra={},
    )


@transaction.atomic
def reveal_supplier_value(*, actor, supplier_id, field: str) -> str:
    """The clear value of a supplier's contact mobile or bank account number, for an administrator or
    finance; one audit entry each."""
    supplier = access_supplier(actor, supplier_id)
    if field not in SUPPLIER_SENSITIVE:
        raise MasterDataInvalid(errors=[{"field": "field", "message": _("Not a field that can be revealed.")}])
    return _reveal(
        actor,
        supplier,
        field,
        object_type="masterdata.supplier",
        object_id=supplier.pk,
        object_repr=supplier.name,
        extra={},
    )


# ------------------------------------------------------------------------------------------ imports


def _customer_row(values: dict, errs: _Errors) -> dict:
    contact = {k: values.get(f"contact_{k}", "") for k in ("name", "title", "phone", "email")}
    data = {
        "name": values.get("name", ""),
        "uscc": values.get("uscc", ""),
        "region": region_code(values.get("region", "")),
        "grade": (values.get("grade") or CustomerGrade.C).upper(),
        "address": values.get("address", ""),
        "notes": values.get("notes", ""),
        "contacts": [contact] if any(contact.values()) else [],
    }
    return _clean_customer(errs, data)


@transaction.atomic
def import_customers_xlsx(*, actor, file) -> ImportResult:
    """Create customers from the first sheet of an .xlsx file (headers in row 1, Chinese or English,
    one optional contact per row). All rows or none: any problem in any row (bad or repeated credit
    code, unknown region…) raises MasterDataImportFailed listing {"row", "column", "message"}."""
    _require(policies.can_import_customers(actor), _("Only an administrator may import customers."))
    return import_rows(
        file,
        columns=CUSTOMER_COLUMNS,
        clean=_customer_row,
        new_errors=_Errors,
        unique="uscc",
        create=lambda cleaned: _create_customer(actor=actor, cleaned=cleaned),
    )


def _lookup_customer(text: str):
    by_code = Customer.objects.filter(uscc=uscc_number.compact(text)).first()
    if by_code is not None:
        return by_code
    by_name = list(Customer.objects.filter(name=text)[:2])
    return by_name[0] if len(by_name) == 1 else None


def _lookup_project_type(text: str):
    return (
        ProjectType.objects.filter(code__iexact=text).first()
        or ProjectType.objects.filter(name=text).first()
        or ProjectType.objects.filter(name_en__iexact=text).first()
    )


def _project_row(values: dict, errs: _Errors) -> dict:
    data = {
        "code": values.get("code", ""),
        "name": values.get("name", ""),
        "region": region_code(values.get("region", "")),
        "province": values.get("province", ""),
        "city": values.get("city", ""),
        "address": values.get("address", ""),
        "latitude": values.get("latitude") or None,
        "longitude": values.get("longitude") or None,
        "geofence_radius_m": values.get("geofence_radius_m") or 500,
    }
    # Names in the sheet become rows here; one that names nothing is reported on its own column.
    customer_text = values.get("customer", "")
    if customer_text:
        customer = _lookup_customer(customer_text)
        if customer is None:
            errs.add("customer", _("No customer has the credit code or name “%(value)s”.") % {"value": customer_text})
        else:
            data["customer"] = customer
    else:
        data["customer"] = None
    type_text = values.get("project_type", "")
    if type_text:
        project_type = _lookup_project_type(type_text)
        if project_type is None:
            errs.add("project_type", _("No project type has the code or name “%(value)s”.") % {"value": type_text})
        else:
            data["project_type"] = project_type
    else:
        data["project_type"] = None
    manager_text = values.get("manager", "")
    if manager_text:
        manager = get_user_model().objects.filter(username=manager_text, is_active=True).first()
        if manager is None:
            errs.add("manager", _("No active user has the username “%(value)s”.") % {"value": manager_text})
        else:
            data["manager"] = manager
    cleaned = _clean_project(errs, data)
    if not any(e["field"] in ("latitude", "longitude") for e in errs.items):
        _check_site(errs, cleaned["latitude"], cleaned["longitude"])
    return cleaned


@transaction.atomic
def import_projects_xlsx(*, actor, file) -> ImportResult:
    """Create projects from the first sheet of an .xlsx file. The customer is named by its credit
    code or full name, the project type by code or name, the manager by username. All rows or none."""
    _require(policies.can_import_projects(actor), _("Only an administrator may import projects."))
    return import_rows(
        file,
        columns=PROJECT_COLUMNS,
        clean=_project_row,
        new_errors=_Errors,
        unique="code",
        create=lambda cleaned: _create_project(actor=actor, cleaned=cleaned),
    )
