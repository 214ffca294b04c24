"""Users, org units, project memberships and API tokens."""

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from eoms.core.ids import uuid7
from eoms.core.models import BaseModel

from .roles import ProjectRole

__all__ = ["OrgUnit", "User", "ProjectMembership", "ApiToken", "Delegation", "TotpDevice", "RecoveryCode"]


class OrgUnit(BaseModel):
    """A department in the company tree. A unit may not be its own ancestor (checked by services)."""

    code = models.CharField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", verbose_name=_("parent unit")
    )
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_units",
        verbose_name=_("manager"),
    )

    class Meta:
        ordering = ["code"]
        verbose_name = _("org unit")
        verbose_name_plural = _("org units")

    def __str__(self):
        return self.name


class EomsUserManager(UserManager):
    def create_superuser(self, username, email=None, password=None, **extra_fields):
        """`eoms createsuperuser`: the first administrator, recorded in the audit chain as made by the
        system (there is no one yet to be the actor)."""
        from .services import record_user_created_by_system

        with transaction.atomic(using=self.db):
            user = super().create_superuser(username, email, password, **extra_fields)
            record_user_created_by_system(user=user)
        return user


class User(AbstractUser):
    """A person who signs in. Company roles are Django groups named after accounts.roles.Role."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    display_name = models.CharField(_("display name"), max_length=100, blank=True)
    org_unit = models.ForeignKey(
        OrgUnit, null=True, blank=True, on_delete=models.SET_NULL, related_name="members", verbose_name=_("org unit")
    )
    phone = models.CharField(_("mobile"), max_length=20, blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True, choices=settings.LANGUAGES)

    objects = EomsUserManager()

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self):
        return self.display_name or self.username


class ProjectMembership(BaseModel):
    """A user's place in a project; it is what puts the project's orders in the user's scope."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    project = models.ForeignKey(
        "masterdata.Project", on_delete=models.CASCADE, related_name="memberships", verbose_name=_("project")
    )
    role = models.CharField(_("project role"), max_length=20, choices=ProjectRole.choices, default=ProjectRole.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="one_membership_per_project")]
        verbose_name = _("project membership")
        verbose_name_plural = _("project memberships")

    def __str__(self):
        return f"{self.user} @ {self.project_id} ({self.role})"


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the secret is shown once at creation.
    A token works until it expires or is revoked, and never for an inactive user."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=12, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class Delegation(BaseModel):
    """A user away from `starts_on` to `ends_on` (inclusive, company dates) names a deputy: approval
    tasks created for the user in that period go to the deputy, marked "on behalf of". Chains
    (A→B→C) are followed when tasks are assigned; services refuse a delegation that would close a
    cycle on any shared day."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delegations", verbose_name=_("user")
    )
    deputy = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deputy_for", verbose_name=_("deputy")
    )
    starts_on = models.DateField(_("from"))
    ends_on = models.DateField(_("until"))
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    revoked_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        ordering = ["-starts_on"]
        indexes = [models.Index(fields=["user", "starts_on", "ends_on"], name="delegation_user_period_idx")]
        verbose_name = _("delegation")
        verbose_name_plural = _("delegations")

    def __str__(self):
        return f"{self.user_id} → {self.deputy_id} {self.starts_on}…{self.ends_on}"


class TotpDevice(models.Model):
    """A user's authenticator app (TOTP, RFC 6238). Its secret is sealed with AES-256-GCM bound to this
    table, column and row (eoms.core.crypto); the clear secret exists only while enrolling and checking.

    A device is pending until confirmed with a first code; a user has at most one confirmed device
    (services.confirm_totp_device replaces the old one while holding the user's row lock). `last_step`
    is the last time step a code of this device was accepted at: a code is taken by a compare-and-set
    (`UPDATE ... WHERE last_step < step`), so a code works once, and of two requests racing with one
    code only one wins."""

    encrypted_fields = ("secret",)

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_devices", verbose_name=_("user")
    )
    secret_enc = models.TextField()
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    last_step = models.BigIntegerField(default=-1)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("authenticator app")
        verbose_name_plural = _("authenticator apps")

    def __str__(self):
        return f"{self.user_id} ({'confirmed' if self.confirmed_at else 'pending'})"


class RecoveryCode(models.Model):
    """One recovery code of a user, for a lost phone: only its SHA-256 is stored (the code carries 120
    random bits), it is shown once when made, and `used_at` is set by a compare-and-set, so it works once."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes", verbose_name=_("user")
    )
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "code_hash"], name="recovery_code_unique_per_user")]
        verbose_name = _("recovery code")
        verbose_name_plural = _("recovery codes")

    def __str__(self):
        return f"{self.user_id} ({'used' if self.used_at else 'unused'})"
