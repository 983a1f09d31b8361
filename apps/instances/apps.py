from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "apps.instances"
    label = "instances"

    def ready(self) -> None:
        from apps.core.schedules import register_periodic

        from . import signals  # noqa: F401  (registers the receivers)
        from .tasks import DISPATCHER_SCHEDULE

        register_periodic(DISPATCHER_SCHEDULE, "apps.instances.tasks.dispatcher_loop")
