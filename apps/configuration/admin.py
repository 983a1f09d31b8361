from django.contrib import admin

from .models import ResourceGroup


@admin.register(ResourceGroup)
class ResourceGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "max_concurrency", "cpu_capacity", "memory_capacity_mb", "created_at"]
    search_fields = ["name", "description"]
