from django.apps import AppConfig


class ResourcesConfig(AppConfig):
    name = "apps.resources"
    label = "resources"

    def ready(self) -> None:
        from . import signals  # noqa: F401
