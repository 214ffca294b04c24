"""Customers, projects (sites), project types, suppliers and subcontractors."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from eoms.core.models import BaseModel

__all__ = [
    "Region",
    "CustomerGrade",
    "SupplierKind",
    "ProjectType",
    "Customer",
    "CustomerContact",
    "Project",
    "Supplier",
]


class Region(models.TextChoices):
    EAST = "east", _("East China")
    NORTH = "north", _("North China")
    SOUTH = "south", _("South China")
    CENTRAL = "central", _("Central China")
    SOUTHWEST = "southwest", _("Southwest China")
    NORTHWEST = "northwest", _("Northwest China")
    NORTHEAST = "northeast", _("Northeast China")


class CustomerGrade(models.TextChoices):
    A = "A", _("A (strategic)")
    B = "B", _("B (key)")
    C = "C", _("C (regular)")
    D = "D", _("D (watch)")


class SupplierKind(models.TextChoices):
    SUPPLIER = "supplier", _("Supplier")
    SUBCONTRACTOR = "subcontractor", _("Subcontractor")


class ProjectType(BaseModel):
    """A kind of engineering work (市政道路, 桥梁…); codes are unique and stable for reports."""

    code = models.CharField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("project type")
        verbose_name_plural = _("project types")

    def __str__(self):
        return self.name


class Customer(BaseModel):
    """A customer (owner or main contractor). The unified social credit code is unique and valid
    by its GB 32100-2015 check character (checked by services before saving)."""

    name = models.CharField(_("name"), max_length=200)
    uscc = models.CharField(_("unified social credit code"), max_length=18, unique=True)
    region = models.CharField(_("region"), max_length=20, choices=Region.choices)
    grade = models.CharField(_("grade"), max_length=1, choices=CustomerGrade.choices, default=CustomerGrade.C)
    address = models.CharField(_("address"), max_length=300, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    # 身份证号 of a natural-person customer, sealed by masterdata.sensitive (AES-256-GCM, docs/decisions/0009);
    # the blind index is HMAC-SHA256 of the normalised number, for exact-match search only.
    id_card_number_enc = models.TextField(_("ID card number (encrypted)"), blank=True, editable=False)
    id_card_number_bidx = models.CharField(max_length=64, blank=True, db_index=True, editable=False)

    encrypted_fields = ("id_card_number",)

    class Meta:
        ordering = ["name"]
        verbose_name = _("customer")
        verbose_name_plural = _("customers")

    def __str__(self):
        return self.name


class CustomerContact(BaseModel):
    """A person at a customer."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="contacts", verbose_name=_("customer")
    )
    name = models.CharField(pgettext_lazy("person", "name"), max_length=100)
    title = models.CharField(_("job title"), max_length=100, blank=True)
    phone_enc = models.TextField(_("mobile (encrypted)"), blank=True, editable=False)
    phone_bidx = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    email = models.EmailField(_("email"), blank=True)

    encrypted_fields = ("phone",)

    class Meta:
        ordering = ["name"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")

    def __str__(self):
        return self.name


class Project(BaseModel):
    """A project and its site. Orders belong to a project; project memberships (accounts) decide
    who sees them. Coordinates are WGS-84 degrees; the geofence radius is in metres."""

    code = models.CharField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=200)
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="projects", verbose_name=_("customer")
    )
    project_type = models.ForeignKey(
        ProjectType, on_delete=models.PROTECT, related_name="projects", verbose_name=_("project type")
    )
    region = models.CharField(_("region"), max_length=20, choices=Region.choices)
    province = models.CharField(_("province"), max_length=40, blank=True)
    city = models.CharField(_("city"), max_length=40, blank=True)
    address = models.CharField(_("address"), max_length=300, blank=True)
    latitude = models.DecimalField(
        _("latitude"),
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(-90)), MaxValueValidator(Decimal(90))],
    )
    longitude = models.DecimalField(
        _("longitude"),
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(-180)), MaxValueValidator(Decimal(180))],
    )
    geofence_radius_m = models.PositiveIntegerField(_("geofence radius (m)"), default=500)
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_projects",
        verbose_name=_("project manager"),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("project")
        verbose_name_plural = _("projects")

    def __str__(self):
        return f"{self.code} {self.name}"


class Supplier(BaseModel):
    """A supplier of materials or a subcontractor; the credit code is unique and check-digit valid."""

    name = models.CharField(_("name"), max_length=200)
    uscc = models.CharField(_("unified social credit code"), max_length=18, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=SupplierKind.choices, default=SupplierKind.SUPPLIER)
    region = models.CharField(_("region"), max_length=20, choices=Region.choices)
    contact_name = models.CharField(_("contact"), max_length=100, blank=True)
    contact_phone_enc = models.TextField(_("mobile (encrypted)"), blank=True, editable=False)
    contact_phone_bidx = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    bank_account_enc = models.TextField(_("bank account number (encrypted)"), blank=True, editable=False)
    bank_account_bidx = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    qualification = models.CharField(_("qualification"), max_length=200, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    encrypted_fields = ("contact_phone", "bank_account")

    class Meta:
        ordering = ["name"]
        verbose_name = _("supplier")
        verbose_name_plural = _("suppliers")

    def __str__(self):
        return self.name
