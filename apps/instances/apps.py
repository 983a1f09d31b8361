from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "apps.instances"
    label = "instances"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (registers the receivers)
