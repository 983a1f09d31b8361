from django.contrib import admin

from apps.core.admin_site import WrittenByOpscenterMixin

from .models import Node, NodeDependency, NodeVersion


# Nodes, their versions and dependencies are made by publishing (validated as a batch).
@admin.register(Node)
class NodeAdmin(WrittenByOpscenterMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "project",
        "env",
        "type",
        "schedule_type",
        "cron",
        "owner",
        "priority",
        "resource_group",
        "paused",
        "status",
        "version",
    ]
    list_filter = ["project", "env", "type", "schedule_type", "paused", "status", "resource_group"]
    search_fields = ["name", "description", "owner__username"]
    list_select_related = ["project", "owner", "resource_group", "current_version"]
    raw_id_fields = ["current_version"]
    autocomplete_fields = ["owner"]


@admin.register(NodeVersion)
class NodeVersionAdmin(WrittenByOpscenterMixin, admin.ModelAdmin):
    list_display = ["node", "number", "published_at", "published_by", "note"]
    list_filter = ["node__project"]
    search_fields = ["node__name", "note"]
    list_select_related = ["node__project", "published_by"]
    readonly_fields = [f.name for f in NodeVersion._meta.fields]

    def has_change_permission(self, request, obj=None):
        return False  # immutable


@admin.register(NodeDependency)
class NodeDependencyAdmin(WrittenByOpscenterMixin, admin.ModelAdmin):
    list_display = ["upstream", "node"]
    list_filter = ["node__project"]
    search_fields = ["node__name", "upstream__name"]
    raw_id_fields = ["node", "upstream"]
    list_select_related = ["node__project", "upstream__project"]
