from django.contrib import admin

from .models import Backup, BackupSettings


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "trigger", "state", "size_bytes", "sha256", "expires_at"]
    list_filter = ["trigger", "state"]
    readonly_fields = [f.name for f in Backup._meta.fields]

    def has_add_permission(self, request):
        return False  # made by the schedule, the page, the API or the CLI

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the backups page and the API delete the archive with its row


@admin.register(BackupSettings)
class BackupSettingsAdmin(admin.ModelAdmin):
    list_display = ["time", "retention_days", "enabled", "updated_at", "updated_by"]
    readonly_fields = ["time", "retention_days", "enabled", "updated_at", "updated_by"]

    def has_add_permission(self, request):
        return False  # the backups page and PUT /api/backups/settings change them

    def has_delete_permission(self, request, obj=None):
        return False
