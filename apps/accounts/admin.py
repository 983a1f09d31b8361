from django.contrib import admin, messages

from apps.core import clock

from .models import ApiToken, Profile
from .services import token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Every user's tokens, for superusers: seen and revoked, never made here (a key is
    shown to its owner once, on the tokens page) and never with their hash."""

    list_display = [
        "user",
        "name",
        "prefix",
        "state",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "expires_at", "created_at"]
    search_fields = ["user__username", "name", "prefix"]
    fields = [
        "user",
        "name",
        "prefix",
        "state",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    readonly_fields = fields
    actions = ["revoke"]

    def _superuser(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self._superuser(request)

    def has_view_permission(self, request, obj=None):
        return self._superuser(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Revoked, not deleted: the record of what a token was stays with its user.
        return False

    def has_revoke_permission(self, request):
        return self._superuser(request)

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return token.state(clock.now()).label

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        revoked = sum(
            token_revoke(token=token, by=request.user, source="ui")
            for token in queryset.filter(revoked_at__isnull=True).select_related("user")
        )
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "phone", "dingtalk_id", "feishu_id", "wecom_id", "slack_id"]
    search_fields = ["user__username", "user__email", "phone"]
    raw_id_fields = ["user"]
