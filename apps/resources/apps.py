from django.apps import AppConfig


class ResourcesConfig(AppConfig):
    name = "apps.resources"
    label = "resources"

    def ready(self) -> None:
        from apps.instances import preparations

        from . import signals  # noqa: F401
        from .workdir import resources_copy

        preparations.register("resources", resources_copy)
