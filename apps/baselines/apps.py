from django.apps import AppConfig


class BaselinesConfig(AppConfig):
    name = "apps.baselines"
    label = "baselines"

    def ready(self) -> None:
        from . import hooks

        hooks.register()
