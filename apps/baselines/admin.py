from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from . import services
from .models import Baseline, BaselineCycle


class BaselineAdminForm(forms.ModelForm):
    """The admin checks a baseline as the API does (services.baseline_errors)."""

    class Meta:
        model = Baseline
        fields = ["project", *services.FIELDS]

    def clean(self):
        cleaned = super().clean()
        project = cleaned.get("project")
        if project is None:
            return cleaned
        data = {name: cleaned.get(name) for name in services.FIELDS}
        data["key_nodes"] = [node.pk for node in cleaned.get("key_nodes") or []]
        data["channels"] = [channel.pk for channel in cleaned.get("channels") or []]
        data["recipients"] = data["recipients"] or {}
        errors = services.baseline_errors(project, data, baseline_id=self.instance.pk)
        found: dict[str, list[str]] = {}
        for error in errors:
            top = error["field"].split(".", 1)[0]
            if top in self.errors:
                continue
            name = top if top in self.fields else None
            message = (
                error["message"]
                if error["field"] == top
                else f"{error['field']}: {error['message']}"
            )
            found.setdefault(name, []).append(message)
        if found:
            raise ValidationError(found)
        return cleaned

    def save(self, commit=True):
        baseline = super().save(commit=commit)
        if commit and not baseline.enabled:
            services.lending_take_back(baseline)
        return baseline


@admin.register(Baseline)
class BaselineAdmin(admin.ModelAdmin):
    form = BaselineAdminForm
    list_display = [
        "name",
        "project",
        "cycle",
        "committed_time",
        "margin_minutes",
        "priority",
        "enabled",
    ]
    list_filter = ["enabled", "cycle", "project"]
    search_fields = ["name", "project__code"]
    list_select_related = ["project"]
    filter_horizontal = ["key_nodes", "channels"]

    def delete_model(self, request, obj):
        services.lending_take_back(obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for baseline in queryset:
            services.lending_take_back(baseline)
        super().delete_queryset(request, queryset)


@admin.register(BaselineCycle)
class BaselineCycleAdmin(admin.ModelAdmin):
    """The cycles are the monitor's record: read here, never edited."""

    list_display = [
        "baseline",
        "biz_date",
        "hour",
        "status",
        "predicted_finish",
        "finished_at",
        "committed_at",
    ]
    list_filter = ["status", "baseline__project"]
    search_fields = ["baseline__name"]
    list_select_related = ["baseline"]
    date_hierarchy = "biz_date"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
