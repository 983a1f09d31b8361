from django.contrib import admin

from .models import ApiToken, Profile


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "prefix", "created_at", "last_used_at"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "phone", "dingtalk_id", "feishu_id", "wecom_id", "slack_id"]
    search_fields = ["user__username", "user__email", "phone"]
    raw_id_fields = ["user"]
