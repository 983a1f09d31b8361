from django.contrib import admin

from .models import OperationLog


@admin.register(OperationLog)
class OperationLogAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "username",
        "source",
        "action",
        "object_type",
        "object_id",
        "project",
        "result",
        "message",
    ]
    list_filter = ["source", "action", "object_type", "result", "project"]
    search_fields = ["username", "action", "object_id", "message"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in OperationLog._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
