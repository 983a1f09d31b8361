from django.contrib import admin

from .models import Backfill


@admin.register(Backfill)
class BackfillAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "state", "start_date", "end_date", "order", "parallelism"]
    list_filter = ["state", "order"]
    readonly_fields = ["created_at", "finished_at", "window_start", "total"]
    raw_id_fields = ["project", "created_by"]
