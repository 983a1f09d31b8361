from django.contrib import admin

from apps.core.admin_site import WrittenByOpscenterMixin

from .models import Backfill


# A backfill run is planned with its instances by the backfill service (page, API).
@admin.register(Backfill)
class BackfillAdmin(WrittenByOpscenterMixin, admin.ModelAdmin):
    list_display = ["id", "project", "state", "start_date", "end_date", "order", "parallelism"]
    list_filter = ["state", "order"]
    readonly_fields = ["created_at", "finished_at", "window_start", "total"]
    raw_id_fields = ["project", "created_by"]
