"""Admin: channels (secrets write-only: inputs that set or remove one, never show it),
deliveries (read-only), in the same validation as the API and pages."""

from django import forms
from django.contrib import admin

from apps.core.errors import ValidationFailed

from . import services
from .models import Channel, Delivery

SECRET_NAMES = ("secret", "token")


class ChannelAdminForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Signing secret (webhook, DingTalk, Feishu). Write-only: empty keeps it.",
    )
    token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="API token (SMS, phone). Write-only: empty keeps it.",
    )
    remove_secrets = forms.MultipleChoiceField(
        required=False,
        choices=[(name, name) for name in SECRET_NAMES],
        widget=forms.CheckboxSelectMultiple,
        help_text="Remove these stored secrets.",
    )

    class Meta:
        model = Channel
        fields = ["project", "name", "kind", "config", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.secrets_set if self.instance.pk else []
        for name in SECRET_NAMES:
            state = "set" if name in stored else "not set"
            self.fields[name].widget.attrs["placeholder"] = state
            self.fields[name].label = f"{name.title()} ({state})"

    def clean(self):
        data = super().clean()
        secrets: dict[str, str | None] = {}
        for name in SECRET_NAMES:
            if name in (data.get("remove_secrets") or []):
                secrets[name] = None
            elif data.get(name):
                secrets[name] = data[name]
        fields = {
            "name": data.get("name", ""),
            "kind": data.get("kind", ""),
            "config": data.get("config") if data.get("config") is not None else {},
            "enabled": bool(data.get("enabled")),
            "secrets": secrets,
        }
        current = Channel.objects.get(pk=self.instance.pk) if self.instance.pk else None
        try:
            self.checked = services.channel_check(
                project=data.get("project"), fields=fields, current=current
            )
        except ValidationFailed as exc:
            for error in exc.errors:
                field = error["field"].split(".")[0]
                if field == "secrets":
                    field = error["field"].split(".")[1]
                target = field if field in self.fields else None
                self.add_error(target, f"{error['field']}: {error['message']}")
            return data
        data["config"] = self.checked["config"]
        return data

    def save(self, commit=True):
        channel = super().save(commit=False)
        channel.secrets = self.checked["secrets"]
        channel.config = self.checked["config"]
        channel.name = self.checked["name"]
        if commit:
            channel.save()
        return channel


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelAdminForm
    list_display = ["name", "project", "kind", "enabled", "secrets_list", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "project__code"]
    raw_id_fields = ["project"]

    @admin.display(description="secrets set")
    def secrets_list(self, channel: Channel) -> str:
        return ", ".join(channel.secrets_set) or "—"

    # Channels carry secrets and reach people: only superusers change them here.
    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "channel",
        "kind",
        "recipient",
        "event",
        "state",
        "tries",
        "last_status",
        "sent_at",
    ]
    list_filter = ["state", "kind", "event"]
    search_fields = ["recipient", "channel__name"]
    raw_id_fields = ["alert", "channel", "project"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
