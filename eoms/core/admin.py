"""Back-office views of the shared kernel. The audit chain and the outbox are written only by
core.audit and core.events, so here they can be read and searched, never added, changed or deleted."""

from django.contrib import admin

from .models import AuditEntry, OutboxMessage

__all__ = ["ReadOnlyAdmin", "AuditEntryAdmin", "OutboxMessageAdmin"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows owned by services: shown, never written from the back office."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "seq", "at", "actor_repr", "action", "object_type", "object_repr", "ip")
    list_filter = ("action", "object_type")
    search_fields = ("actor_repr", "object_id", "object_repr", "request_id")
    date_hierarchy = "at"
    ordering = ("-id",)  # the order of writing; seq is the chain's, given when sealed
    list_select_related = False
    show_full_result_count = False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_type", "aggregate_type", "aggregate_id", "created_at", "sent_at", "attempts")
    list_filter = ("event_type", "aggregate_type")
    search_fields = ("aggregate_id", "message_id", "request_id", "last_error")
    date_hierarchy = "created_at"
    ordering = ("-id",)
    show_full_result_count = False
