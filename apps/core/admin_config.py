"""django.contrib.admin with opscenter's site (apps.core.admin_site: superusers only).

A module of its own: INSTALLED_APPS imports it before the models are ready."""

from django.contrib.admin.apps import AdminConfig


class OpscenterAdminConfig(AdminConfig):
    default_site = "apps.core.admin_site.SuperuserAdminSite"
