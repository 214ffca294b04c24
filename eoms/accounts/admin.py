"""Users in the back office. User management is the administrator's job, so users are edited with
Django's UserAdmin, fitted to our User (display name, org unit, mobile, language; UUID key).
Org units, project memberships and API tokens are written by accounts.services (audited) and are
read-only here."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.utils.translation import gettext_lazy as _

from eoms.core.admin import ReadOnlyAdmin

from .models import ApiToken, OrgUnit, ProjectMembership, User


def _services():
    # Imported on use: the admin is loaded while Django starts, and the services bring
    # eoms.core.metrics, which `eoms serve` must set up (its shared directory) before anything
    # imports it.
    from . import services

    return services


class EomsUserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "display_name", "email")


class EomsUserChangeForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


class MembershipInline(admin.TabularInline):
    model = ProjectMembership
    fields = ("project", "role", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = EomsUserChangeForm
    add_form = EomsUserCreationForm
    list_display = ("username", "display_name", "email", "org_unit", "phone", "is_active", "is_staff")
    list_filter = ("is_active", "is_staff", "is_superuser", "groups", "org_unit")
    search_fields = ("username", "display_name", "email", "phone")
    ordering = ("username",)
    list_select_related = ("org_unit",)
    autocomplete_fields = ("org_unit",)
    inlines = (MembershipInline,)
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Personal info"), {"fields": ("display_name", "first_name", "last_name", "email", "phone", "language")}),
        (_("Organisation"), {"fields": ("org_unit",)}),
        (
            _("Permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "display_name", "email", "usable_password", "password1", "password2"),
            },
        ),
    )
    readonly_fields = ("last_login", "date_joined")

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()

    # Writes go through accounts.services, which records each change in the audit chain.
    def save_model(self, request, obj, form, change):
        obj._roles_before = set(obj.groups.values_list("name", flat=True)) if change else set()
        _services().save_user_from_back_office(
            actor=request.user, user=obj, created=not change, changed_fields=list(form.changed_data)
        )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        user = form.instance
        _services().record_roles_change(
            actor=request.user,
            user=user,
            before=getattr(user, "_roles_before", set()),
            after=set(user.groups.values_list("name", flat=True)),
        )

    actions = ("reset_two_factor",)

    @admin.action(description=_("Reset two-factor authentication (lost phone)"))
    def reset_two_factor(self, request, queryset):
        """Removes the users' authenticator apps and recovery codes, each reset audited (services)."""
        for user in queryset:
            _services().reset_two_factor(actor=request.user, user=user)
        self.message_user(
            request,
            _("Two-factor authentication reset for %(count)d user(s).") % {"count": len(queryset)},
        )

    def has_delete_permission(self, request, obj=None):
        # Users are deactivated (is_active), never deleted: their audit entries and orders point at them.
        return False


@admin.register(OrgUnit)
class OrgUnitAdmin(ReadOnlyAdmin):
    list_display = ("code", "name", "parent", "manager")
    search_fields = ("code", "name")
    list_select_related = ("parent", "manager")


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(ReadOnlyAdmin):
    list_display = ("user", "project", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__username", "user__display_name", "project__code", "project__name")
    list_select_related = ("user", "project")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ("name", "user", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    exclude = ("token_hash",)
