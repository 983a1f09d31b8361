from django.contrib import admin

from apps.core.admin_site import WrittenByOpscenterMixin

from .models import Attempt, GenerationRun, Instance, InstanceDependency


class AttemptInline(WrittenByOpscenterMixin, admin.TabularInline):
    model = Attempt
    extra = 0
    readonly_fields = [
        "number",
        "state",
        "reason",
        "started_at",
        "finished_at",
        "exit_code",
        "cpu_seconds",
        "peak_memory_mb",
        "worker",
        "heartbeat_at",
    ]
    exclude = ["pid", "log_size"]
    can_delete = False


@admin.register(Instance)
class InstanceAdmin(WrittenByOpscenterMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "node",
        "kind",
        "biz_date",
        "scheduled_at",
        "state",
        "wait_reason",
        "paused",
        "forced",
        "priority",
        "resource_group",
        "attempt_count",
    ]
    list_filter = [
        "state",
        "kind",
        "wait_reason",
        "paused",
        "forced",
        "env",
        "resource_group",
        "project",
    ]
    search_fields = ["node__name", "=id"]
    date_hierarchy = "biz_date"
    list_select_related = ["node__project", "resource_group"]
    raw_id_fields = ["node", "version", "created_by"]
    inlines = [AttemptInline]
    show_full_result_count = False


@admin.register(InstanceDependency)
class InstanceDependencyAdmin(WrittenByOpscenterMixin, admin.ModelAdmin):
    list_display = ["id", "upstream", "downstream", "removed"]
    list_filter = ["removed"]
    raw_id_fields = ["upstream", "downstream"]
    list_select_related = ["upstream__node", "downstream__node"]
    show_full_result_count = False


@admin.register(Attempt)
class AttemptAdmin(WrittenByOpscenterMixin, admin.ModelAdmin):
    list_display = [
        "instance",
        "number",
        "state",
        "started_at",
        "finished_at",
        "exit_code",
        "cpu_seconds",
        "peak_memory_mb",
        "worker",
    ]
    list_filter = ["state"]
    search_fields = ["=instance__id", "instance__node__name", "worker"]
    raw_id_fields = ["instance"]
    list_select_related = ["instance__node"]
    show_full_result_count = False


@admin.register(GenerationRun)
class GenerationRunAdmin(WrittenByOpscenterMixin, admin.ModelAdmin):
    list_display = [
        "project",
        "run_date",
        "cutoff",
        "trigger",
        "started_at",
        "finished_at",
        "instances_created",
        "edges_created",
    ]
    list_filter = ["project", "trigger"]
    date_hierarchy = "run_date"
