from django import forms
from django.contrib import admin

from .models import Datasource, Membership, Project, Variable
from .services import dsn_problem


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "timezone", "env_mode", "generation_time", "generation_mode"]
    list_filter = ["env_mode", "generation_mode", "timezone"]
    search_fields = ["code", "name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__code"]
    autocomplete_fields = ["user", "project"]


class DatasourceForm(forms.ModelForm):
    # Write-only: the stored password is never shown; leave empty to keep it.
    password = forms.CharField(widget=forms.PasswordInput, required=False)

    class Meta:
        model = Datasource
        fields = ["project", "name", "kind", "dsn", "path"]

    def clean_dsn(self):
        dsn = self.cleaned_data.get("dsn", "")
        if dsn.strip() and (problem := dsn_problem(dsn)):
            raise forms.ValidationError(problem)
        return dsn

    def save(self, commit=True):
        datasource = super().save(commit=False)
        if self.cleaned_data.get("password"):
            datasource.set_password(self.cleaned_data["password"])
        if commit:
            datasource.save()
        return datasource


@admin.register(Datasource)
class DatasourceAdmin(admin.ModelAdmin):
    form = DatasourceForm
    list_display = [
        "name",
        "project",
        "kind",
        "dsn",
        "path",
        "has_password",
        "restored_without_secret",
    ]
    list_filter = ["kind", "project"]
    search_fields = ["name", "project__code", "dsn", "path"]

    @admin.display(boolean=True)
    def has_password(self, obj):
        return obj.has_password


@admin.register(Variable)
class VariableAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "value"]
    list_filter = ["project"]
    search_fields = ["name", "value"]
