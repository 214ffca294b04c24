"""Master data in the back office: read-only. Customers, projects, project types and suppliers are
written by masterdata.services (validated, audited, compare-and-set), which the admin's generic
forms would bypass; the pages under /masterdata/ are where they are changed."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from . import sensitive
from .models import Customer, CustomerContact, Project, ProjectType, Supplier


class _ReadOnly:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ContactInline(_ReadOnly, admin.TabularInline):
    model = CustomerContact
    fields = ("name", "title", "masked_phone", "email")
    readonly_fields = fields
    extra = 0

    @admin.display(description=_("mobile"))
    def masked_phone(self, obj):
        # Encrypted at rest; the back office shows it masked (the reveal is on the customer page, audited).
        return sensitive.masked(obj, "phone")


@admin.register(Customer)
class CustomerAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("name", "uscc", "region", "grade", "updated_at")
    list_filter = ("region", "grade")
    search_fields = ("name", "uscc")
    readonly_fields = ("id", "created_at", "updated_at", "version")
    inlines = [ContactInline]


@admin.register(ProjectType)
class ProjectTypeAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("code", "name", "name_en")
    search_fields = ("code", "name", "name_en")


@admin.register(Project)
class ProjectAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("code", "name", "customer", "project_type", "region", "city", "manager", "is_active")
    list_filter = ("region", "project_type", "is_active")
    search_fields = ("code", "name", "city", "customer__name")
    list_select_related = ("customer", "project_type", "manager")
    readonly_fields = ("id", "created_at", "updated_at", "version")


@admin.register(Supplier)
class SupplierAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("name", "uscc", "kind", "region", "qualification", "is_active")
    list_filter = ("kind", "region", "is_active")
    search_fields = ("name", "uscc", "qualification")
    readonly_fields = ("id", "created_at", "updated_at", "version")
