"""The Django admin is a superuser's tool: the daily work (projects, members, datasources,
variables, tokens...) has pages of its own that go through the services. Staff who are
not superusers are refused, at the login form and on every admin page.

Installed as the default admin site by apps.core.admin_config (in INSTALLED_APPS in place
of django.contrib.admin), so every app's `admin.site.register` lands here.
"""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError


class SuperuserAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter the username and password of a superuser. The administration is "
            "for superusers only: projects, members, datasources and tokens have pages of "
            "their own."
        ),
    }

    def confirm_login_allowed(self, user):
        if not (user.is_active and user.is_superuser):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class SuperuserAdminSite(admin.AdminSite):
    site_header = "opscenter administration"
    site_title = "opscenter administration"
    index_title = "Superuser administration"
    login_form = SuperuserAuthenticationForm

    def has_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser


class WrittenByOpscenterMixin:
    """For records only opscenter itself writes (instances, attempts, events, publish's
    versions...): a hand-made one would bypass the rules that make them, so the admin
    offers no Add."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False
