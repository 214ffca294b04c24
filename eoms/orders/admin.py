"""Orders in the back office: read-only. Every change of an order, its history and its files goes
through orders.services (audited, compare-and-set), which the admin's generic forms would bypass."""

from django.contrib import admin

from eoms.core.admin import ReadOnlyAdmin

from .models import Attachment, Order, OrderHistory


class HistoryInline(admin.TabularInline):
    model = OrderHistory
    fields = ("at", "transition", "from_state", "to_state", "actor", "comment")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AttachmentInline(admin.TabularInline):
    model = Attachment
    fields = ("original_name", "kind", "content_type", "size", "sha256", "uploaded_by", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("number", "title", "project", "state", "contract_amount", "stage_owner", "stage_deadline")
    list_filter = ("state", "kind", "region", "level")
    search_fields = ("number", "title", "project__name", "project__code", "customer__name")
    list_select_related = ("project", "stage_owner")
    date_hierarchy = "created_at"
    inlines = (HistoryInline, AttachmentInline)
    raw_id_fields = ("parent",)


@admin.register(OrderHistory)
class OrderHistoryAdmin(ReadOnlyAdmin):
    list_display = ("order", "transition", "from_state", "to_state", "actor", "at")
    list_filter = ("transition", "to_state")
    search_fields = ("order__number", "comment")
    list_select_related = ("order", "actor")
    date_hierarchy = "at"


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin):
    list_display = ("original_name", "order", "kind", "content_type", "size", "uploaded_by", "created_at")
    list_filter = ("kind", "content_type")
    search_fields = ("original_name", "order__number", "sha256")
    list_select_related = ("order", "uploaded_by")
