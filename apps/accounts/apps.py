from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from .timezones import remember_at_login

        user_logged_in.connect(remember_at_login, dispatch_uid="accounts.timezone_at_login")
