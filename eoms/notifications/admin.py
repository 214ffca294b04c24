"""Back office: deliveries (failed ones first of all) can be searched and sent again; daily digests
can be looked at; rows are written only by the services."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from eoms.core.admin import ReadOnlyAdmin

from .models import Delivery, DeliveryState, Digest
from .services import retry_deliveries

__all__ = ["DeliveryAdmin", "DigestAdmin"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "channel", "address", "state", "attempts", "due_at", "sent_at", "last_error")
    list_filter = ("state", "channel")
    search_fields = ("address", "message_id", "last_error")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    actions = ["send_again"]
    show_full_result_count = False

    @admin.action(description=_("Send the failed deliveries again"))
    def send_again(self, request, queryset):
        ids = list(queryset.filter(state=DeliveryState.FAILED).values_list("pk", flat=True))
        count = retry_deliveries(actor=request.user, delivery_ids=ids)
        self.message_user(
            request,
            ngettext("%(count)d delivery will be sent again.", "%(count)d deliveries will be sent again.", count)
            % {"count": count},
            messages.SUCCESS,
        )


@admin.register(Digest)
class DigestAdmin(ReadOnlyAdmin):
    list_display = ("day", "address", "state", "attempts", "due_at", "sent_at", "last_error")
    list_filter = ("state",)
    search_fields = ("address", "last_error")
    date_hierarchy = "day"
    ordering = ("-day", "-created_at")
    show_full_result_count = False
