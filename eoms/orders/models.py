"""Engineering orders, their transition history and attachments."""

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from eoms.core.models import BaseModel

from .state import OrderState

__all__ = ["OrderKind", "TaxRate", "AttachmentKind", "Order", "OrderHistory", "Attachment", "OrderSummary"]

CENT = Decimal("0.01")


class OrderKind(models.TextChoices):
    CONSTRUCTION = "construction", _("Construction")
    INSTALLATION = "installation", _("Installation")
    DESIGN = "design", _("Design")
    PROCUREMENT = "procurement", _("Procurement")
    CONSULTING = "consulting", _("Consulting")
    MAINTENANCE = "maintenance", _("Maintenance")


class TaxRate(models.TextChoices):
    # xgettext:no-python-format
    CONSTRUCTION = "0.09", _("9% construction services")
    # xgettext:no-python-format
    MODERN_SERVICES = "0.06", _("6% modern services")
    # xgettext:no-python-format
    GOODS = "0.13", _("13% goods")
    # xgettext:no-python-format
    SIMPLIFIED = "0.03", _("3% small-scale (simplified)")
    # xgettext:no-python-format
    EXEMPT = "0.00", _("0% exempt")


class AttachmentKind(models.TextChoices):
    QUOTATION = "quotation", _("Quotation")
    SIGNED_CONTRACT = "signed_contract", _("Signed contract")
    ACCEPTANCE_REPORT = "acceptance_report", _("Acceptance report")
    DRAWING = "drawing", _("Drawing")
    PHOTO = "photo", _("Site photo")
    SETTLEMENT = "settlement", _("Settlement statement")
    OTHER = "other", _("Other")


class Order(BaseModel):
    """An engineering order. Invariants, kept by orders.services:
    - `state` changes only through a transition of orders.state, applied with compare-and-set on
      `version`, each leaving one OrderHistory row, one audit entry and one outbox message;
    - a child order's amount fits in what is left of its parent's (non-cancelled children summed);
    - the tree is at most three levels deep (main contract, subcontract, sub-subcontract);
    - `contract_amount` is tax-inclusive; tax and net are derived, rounded half-up to the cent;
    - `estimated_cost` (optional, on the same basis as the amount) gives the derived gross `margin`.
    """

    number = models.CharField(_("number"), max_length=20, unique=True)
    title = models.CharField(_("title"), max_length=200)
    customer = models.ForeignKey(
        "masterdata.Customer", on_delete=models.PROTECT, related_name="orders", verbose_name=_("customer")
    )
    project = models.ForeignKey(
        "masterdata.Project", on_delete=models.PROTECT, related_name="orders", verbose_name=_("project")
    )
    kind = models.CharField(_("type"), max_length=20, choices=OrderKind.choices, default=OrderKind.CONSTRUCTION)
    region = models.CharField(_("region"), max_length=20, db_index=True)
    contract_amount = models.DecimalField(_("contract amount"), max_digits=16, decimal_places=2)
    # What the quotation (报价) expects the work to cost; entered while quoting. The gross margin
    # approval conditions test is derived from it (`margin`).
    estimated_cost = models.DecimalField(_("estimated cost"), max_digits=16, decimal_places=2, null=True, blank=True)
    tax_rate = models.DecimalField(_("tax rate"), max_digits=4, decimal_places=2, default=Decimal("0.09"))
    description = models.TextField(_("description"), blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", verbose_name=_("parent order")
    )
    level = models.PositiveSmallIntegerField(_("level"), default=1)
    state = models.CharField(
        _("state"), max_length=24, choices=OrderState.choices, default=OrderState.INITIATED, db_index=True
    )
    stage_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_orders",
        verbose_name=_("stage owner"),
    )
    stage_entered_at = models.DateTimeField(_("stage entered at"), default=timezone.now)
    stage_deadline = models.DateTimeField(_("stage deadline"), null=True, blank=True, db_index=True)
    held_from = models.CharField(max_length=24, blank=True)
    cancel_reason = models.TextField(_("cancellation reason"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("updated by")
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "state"], name="order_project_state_idx"),
            models.Index(fields=["state", "stage_deadline"], name="order_state_deadline_idx"),
            # The list's orderings and its common filters read in order from these (keyset pages;
            # EXPLAIN in eoms/orders/tests/test_list_keyset.py and bench/README.md, "reports"). The
            # default ordering (-created_at, -id) uses created_at's own index, ties sorted incrementally.
            models.Index(fields=["updated_at", "id"], name="order_updated_id_idx"),
            models.Index(fields=["contract_amount", "id"], name="order_amount_id_idx"),
            models.Index(fields=["state", "created_at", "id"], name="order_state_created_idx"),
            models.Index(fields=["region", "created_at", "id"], name="order_region_created_idx"),
            models.Index(fields=["kind", "created_at", "id"], name="order_kind_created_idx"),
            models.Index(fields=["project", "created_at", "id"], name="order_project_created_idx"),
        ]
        permissions = [("view_all_orders", "Can see orders of every project")]
        verbose_name = _("order")
        verbose_name_plural = _("orders")

    def __str__(self):
        return f"{self.number} {self.title}"

    @property
    def tax_amount(self) -> Decimal:
        net = self.net_amount
        return (self.contract_amount - net).quantize(CENT, ROUND_HALF_UP)

    @property
    def net_amount(self) -> Decimal:
        return (self.contract_amount / (Decimal(1) + self.tax_rate)).quantize(CENT, ROUND_HALF_UP)

    @property
    def margin(self) -> Decimal | None:
        """Gross margin in percent, (amount - estimated cost) / amount, rounded half-up to the
        hundredth (Decimal("18.50") for 18.5 %); None without an estimated cost or with no amount.
        Negative when the estimate exceeds the amount."""
        if self.estimated_cost is None or not self.contract_amount:
            return None
        ratio = (self.contract_amount - self.estimated_cost) * 100 / self.contract_amount
        return ratio.quantize(CENT, ROUND_HALF_UP)

    @property
    def is_overdue(self) -> bool:
        return bool(
            self.stage_deadline and self.stage_deadline < timezone.now() and self.state not in OrderState.terminal()
        )


class OrderHistory(models.Model):
    """One transition of an order, as shown on its timeline. Written only with the transition."""

    id = models.BigAutoField(primary_key=True)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="history", verbose_name=_("order"))
    transition = models.CharField(_("action"), max_length=40)
    from_state = models.CharField(_("from"), max_length=24, blank=True)
    to_state = models.CharField(_("to"), max_length=24)
    # Empty when the system acted (an approval timing out).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("by"),
    )
    at = models.DateTimeField(_("time"), default=timezone.now)
    comment = models.TextField(_("comment"), blank=True)

    class Meta:
        ordering = ["at", "id"]
        # An order's timeline in order, and the stage cycle times' walk over every order's history
        # (PARTITION BY order ORDER BY at, id) without sorting millions of rows.
        indexes = [models.Index(fields=["order", "at", "id"], name="orderhistory_order_at_idx")]
        verbose_name = _("order history entry")
        verbose_name_plural = _("order history")

    def __str__(self):
        return f"{self.order_id}: {self.from_state} → {self.to_state}"


def _attachment_path(instance, filename):
    return f"orders/{instance.order_id}/{instance.id}"


class Attachment(BaseModel):
    """A file on an order or on one of its transitions. Its type was recognised from its content,
    not its name; sha256 is of the stored bytes."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="attachments", verbose_name=_("order"))
    history = models.ForeignKey(
        OrderHistory,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="attachments",
        verbose_name=_("transition"),
    )
    kind = models.CharField(_("kind"), max_length=24, choices=AttachmentKind.choices, default=AttachmentKind.OTHER)
    file = models.FileField(_("file"), upload_to=_attachment_path, max_length=300)
    original_name = models.CharField(_("file name"), max_length=200)
    content_type = models.CharField(_("content type"), max_length=120)
    size = models.PositiveBigIntegerField(_("size"))
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("uploaded by")
    )

    class Meta:
        ordering = ["created_at"]
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self):
        return self.original_name


class OrderSummary(models.Model):
    """Orders counted by the month they were created in (in settings.TIME_ZONE) × project × region ×
    type × state: how many orders are in that state now and their amounts summed, and the stays in
    that state that have ended (how many, and their total length in microseconds). A read model of
    Order and OrderHistory, kept exact by orders.services in the transaction of every write that
    changes it (create, transition, amount or type change); `eoms reports rebuild-summary` recounts
    it from the orders and their history. A write adds rows rather than updating a bucket's row, so
    a bucket is the sum of its rows (orders.summary; decision 0018), merged by compaction."""

    id = models.BigAutoField(primary_key=True)
    month = models.DateField()
    project = models.ForeignKey("masterdata.Project", on_delete=models.CASCADE, related_name="+")
    region = models.CharField(max_length=20)
    kind = models.CharField(max_length=20)
    state = models.CharField(max_length=24)
    orders = models.BigIntegerField(default=0)
    amount = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0.00"))
    stays = models.BigIntegerField(default=0)
    stay_us = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["month", "project", "region", "kind", "state"], name="order_summary_bucket_idx")
        ]

    def __str__(self):
        return f"{self.month:%Y-%m} {self.project_id} {self.region} {self.kind} {self.state}: {self.orders}"
