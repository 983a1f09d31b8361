from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from . import services
from .models import Alert, AlertEvent, MonitorRule, OnCallSchedule


def _form_errors(errors: list[dict], fields) -> dict[str, list[str]]:
    """{"field": "triggers.0.type", ...} -> errors on the form field they are about."""
    found: dict[str, list[str]] = {}
    for error in errors:
        top = error["field"].split(".", 1)[0]
        name = top if top in fields else None
        message = error["message"]
        if name is None or error["field"] != top:
            message = f"{error['field']}: {message}"
        found.setdefault(name, []).append(message)
    return found


class MonitorRuleAdminForm(forms.ModelForm):
    """The admin checks a rule as the API does (services.monitor_rule_errors)."""

    class Meta:
        model = MonitorRule
        fields = ["project", *services.RULE_FIELDS]

    def clean(self):
        cleaned = super().clean()
        project = cleaned.get("project")
        if project is None:
            return cleaned
        data = {name: cleaned.get(name) for name in services.RULE_FIELDS if name != "channels"}
        data["channels"] = [channel.pk for channel in cleaned.get("channels") or []]
        for name in ("recipients", "escalate_to"):
            data[name] = data[name] or {}
        data["mute_windows"] = data["mute_windows"] or []
        errors = services.monitor_rule_errors(project, data, rule_id=self.instance.pk)
        errors = [e for e in errors if e["field"].split(".", 1)[0] not in self.errors]
        if errors:
            raise ValidationError(_form_errors(errors, self.fields))
        return cleaned


@admin.register(MonitorRule)
class MonitorRuleAdmin(admin.ModelAdmin):
    form = MonitorRuleAdminForm
    list_display = ["name", "project", "severity", "dedup_minutes", "enabled", "updated_at"]
    list_filter = ["enabled", "severity", "project"]
    search_fields = ["name", "project__code"]
    list_select_related = ["project"]
    filter_horizontal = ["channels"]


class OnCallScheduleAdminForm(forms.ModelForm):
    """Checked as the API checks it (services.on_call_errors)."""

    class Meta:
        model = OnCallSchedule
        fields = ["project", *services.ON_CALL_FIELDS]

    def clean(self):
        cleaned = super().clean()
        data = {name: cleaned.get(name) for name in services.ON_CALL_FIELDS}
        errors = services.on_call_errors(data, schedule_id=self.instance.pk)
        # Fields the form itself refused already carry their own message.
        errors = [e for e in errors if e["field"].split(".", 1)[0] not in self.errors]
        if errors:
            raise ValidationError(_form_errors(errors, self.fields))
        return cleaned


@admin.register(OnCallSchedule)
class OnCallScheduleAdmin(admin.ModelAdmin):
    form = OnCallScheduleAdminForm
    list_display = ["name", "project", "period", "handover", "timezone", "start_date"]
    list_filter = ["period", "project"]
    search_fields = ["name"]
    list_select_related = ["project"]


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    fields = ["at", "kind", "user", "comment", "detail"]
    readonly_fields = fields
    can_delete = False
    ordering = ["at", "id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Read-only: alerts change through acknowledge and resolve (pages, API, CLI), which
    check roles and keep the operation log."""

    list_display = [
        "id",
        "title",
        "project",
        "severity",
        "state",
        "count",
        "first_at",
        "last_at",
    ]
    list_filter = ["state", "severity", "source", "trigger", "project"]
    search_fields = ["title", "=id", "dedup_key"]
    list_select_related = ["project"]
    date_hierarchy = "first_at"
    inlines = [AlertEventInline]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # view only: the page shows every field read-only


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ["alert", "kind", "at", "user"]
    list_filter = ["kind"]
    search_fields = ["=alert__id", "comment"]
    raw_id_fields = ["alert"]
    list_select_related = ["alert", "user"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
