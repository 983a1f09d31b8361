from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse

from apps.core.errors import OpscenterError

from . import capacity_services
from .models import ResourceGroup, ThrottleRule


def _form_errors(errors: list[dict], fields) -> dict:
    found: dict = {}
    for error in errors:
        name = error["field"] if error["field"] in fields else None
        message = error["message"] if name else f"{error['field']}: {error['message']}"
        found.setdefault(name, []).append(message)
    return found


class ResourceGroupAdminForm(forms.ModelForm):
    """Checked as the API checks it (capacity_services.resource_group_errors)."""

    class Meta:
        model = ResourceGroup
        fields = list(capacity_services.GROUP_FIELDS)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        data = {name: cleaned.get(name) for name in capacity_services.GROUP_FIELDS}
        data["description"] = data["description"] or ""
        group = self.instance if self.instance.pk else None
        if group is not None:
            data["name"] = ResourceGroup.objects.get(pk=group.pk).name
        errors = capacity_services.resource_group_errors(data, group=group)
        if group is not None and cleaned.get("name") != data["name"]:
            errors.append({"field": "name", "message": "a group cannot be renamed"})
        if errors:
            raise ValidationError(_form_errors(errors, self.fields))
        return cleaned


@admin.register(ResourceGroup)
class ResourceGroupAdmin(admin.ModelAdmin):
    """Writes go through capacity_services: the superuser check and the operation log."""

    form = ResourceGroupAdminForm
    list_display = ["name", "max_concurrency", "cpu_capacity", "memory_capacity_mb", "created_at"]
    search_fields = ["name", "description"]
    actions = None  # a bulk delete would bypass the checks of each group's delete

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data.get(name) for name in capacity_services.GROUP_FIELDS}
        data["description"] = data["description"] or ""
        if change:
            data.pop("name")
            saved = capacity_services.resource_group_update(
                group=ResourceGroup.objects.get(pk=obj.pk),
                data=data,
                by=request.user,
                source="admin",
            )
        else:
            saved = capacity_services.resource_group_create(
                data=data, by=request.user, source="admin"
            )
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_view(self, request, object_id, extra_context=None):
        group = self.get_object(request, object_id)
        if group is not None and request.method == "POST":
            try:
                capacity_services.resource_group_delete(
                    group=group, by=request.user, source="admin"
                )
            except OpscenterError as exc:
                messages.error(request, exc.detail)
                return HttpResponseRedirect(
                    reverse("admin:configuration_resourcegroup_change", args=[group.pk])
                )
            messages.success(request, f"Resource group {group.name} deleted.")
            return HttpResponseRedirect(reverse("admin:configuration_resourcegroup_changelist"))
        return super().delete_view(request, object_id, extra_context)


class ThrottleRuleAdminForm(forms.ModelForm):
    """A rule as the API takes it: the scope value is resolved to what it names."""

    window_start = forms.CharField(required=False, help_text="HH:MM")
    window_end = forms.CharField(
        required=False, help_text="HH:MM; before the start: crosses midnight"
    )

    class Meta:
        model = ThrottleRule
        fields = list(capacity_services.RULE_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for end in ("window_start", "window_end"):
            value = getattr(self.instance, end, None)
            if value is not None:
                self.initial[end] = value.strftime("%H:%M")

    def clean(self):
        cleaned = super().clean()
        data = self.rule_data()
        _scope, errors = capacity_services.throttle_rule_errors(data, rule_id=self.instance.pk)
        errors = [e for e in errors if e["field"] not in self.errors]
        if errors:
            raise ValidationError(_form_errors(errors, self.fields))
        return cleaned

    def rule_data(self) -> dict:
        data = {name: self.cleaned_data.get(name) for name in capacity_services.RULE_FIELDS}
        for end in ("window_start", "window_end"):
            data[end] = (data[end] or "").strip() or None
        data["enabled"] = bool(data["enabled"])
        return data


@admin.register(ThrottleRule)
class ThrottleRuleAdmin(admin.ModelAdmin):
    """Writes go through capacity_services: the role check and the operation log."""

    form = ThrottleRuleAdminForm
    list_display = [
        "name",
        "scope_kind",
        "scope_value",
        "max_concurrency",
        "window_start",
        "window_end",
        "enabled",
    ]
    list_filter = ["enabled", "scope_kind"]
    search_fields = ["name", "scope_value"]
    actions = None

    def save_model(self, request, obj, form, change):
        data = form.rule_data()
        if change:
            saved = capacity_services.throttle_rule_update(
                rule=ThrottleRule.objects.get(pk=obj.pk), data=data, by=request.user, source="admin"
            )
        else:
            saved = capacity_services.throttle_rule_create(
                data=data, by=request.user, source="admin"
            )
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        capacity_services.throttle_rule_delete(rule=obj, by=request.user, source="admin")
