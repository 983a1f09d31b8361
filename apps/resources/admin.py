from django.contrib import admin

from .models import Resource, ResourcePin, ResourceVersion


class ReadOnlyAdmin(admin.ModelAdmin):
    """Stored files and pins change only through the services (uploads, publishes)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ResourceVersionInline(admin.TabularInline):
    model = ResourceVersion
    fields = ["number", "file", "size_bytes", "sha256", "uploaded_by", "uploaded_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "project__code"]
    readonly_fields = ["project", "name", "created_by", "created_at"]
    inlines = [ResourceVersionInline]

    def has_add_permission(self, request):
        return False


@admin.register(ResourceVersion)
class ResourceVersionAdmin(ReadOnlyAdmin):
    list_display = ["resource", "number", "size_bytes", "sha256", "uploaded_by", "uploaded_at"]
    list_filter = ["resource__project"]
    search_fields = ["resource__name", "sha256"]
    list_select_related = ["resource__project", "uploaded_by"]


@admin.register(ResourcePin)
class ResourcePinAdmin(ReadOnlyAdmin):
    list_display = ["node_version", "name", "number", "resource_version"]
    search_fields = ["name", "node_version__node__name"]
    list_select_related = ["node_version__node__project", "resource_version__resource__project"]

    def has_delete_permission(self, request, obj=None):
        return False
