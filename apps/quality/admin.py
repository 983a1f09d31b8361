from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from . import services
from .models import FieldRule, FieldRuleResult


class FieldRuleAdminForm(forms.ModelForm):
    """The admin checks a rule as the API does (services.field_rule_errors)."""

    class Meta:
        model = FieldRule
        fields = ["project", *services.RULE_FIELDS]

    def clean(self):
        cleaned = super().clean()
        project = cleaned.get("project")
        if project is None:
            return cleaned
        data = {name: cleaned.get(name) for name in services.RULE_FIELDS}
        node, datasource = cleaned.get("node"), cleaned.get("datasource")
        data["node"] = node.pk if node else None
        data["datasource"] = datasource.name if datasource else ""
        data["channels"] = [channel.pk for channel in cleaned.get("channels") or []]
        for name in ("table", "field", "where", "sql"):
            data[name] = data[name] or ""
        data["enabled"] = bool(data["enabled"])
        errors = services.field_rule_errors(project, data)
        if datasource is not None and datasource.project_id != project.pk:
            errors = [e for e in errors if e["field"] != "datasource"]
            errors.append(
                {"field": "datasource", "message": f"not a datasource of project {project.code}"}
            )
        # Fields the form itself refused already carry their own message.
        errors = [e for e in errors if e["field"] not in self.errors]
        if errors:
            found: dict[str, list[str]] = {}
            for error in errors:
                name = error["field"] if error["field"] in self.fields else None
                found.setdefault(name, []).append(error["message"])
            raise ValidationError(found)
        return cleaned


@admin.register(FieldRule)
class FieldRuleAdmin(admin.ModelAdmin):
    form = FieldRuleAdminForm
    list_display = ["id", "node", "project", "metric", "table", "severity", "enabled"]
    list_filter = ["enabled", "severity", "metric", "project"]
    search_fields = ["=id", "table", "field", "node__name", "project__code"]
    list_select_related = ["project", "node"]
    raw_id_fields = ["node"]
    filter_horizontal = ["channels"]


@admin.register(FieldRuleResult)
class FieldRuleResultAdmin(admin.ModelAdmin):
    """Read-only: results are what the checks found."""

    list_display = ["id", "rule", "instance", "attempt", "value", "passed", "checked_at"]
    list_filter = ["passed"]
    search_fields = ["=rule__id", "=instance__id"]
    raw_id_fields = ["rule", "instance"]
    list_select_related = ["rule", "rule__node"]
    date_hierarchy = "checked_at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
