from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"

    def ready(self) -> None:
        from apps.core.schedules import register_periodic

        from .tasks import MONITOR_SCHEDULE

        # Events within seconds, time rules and escalation every minute (tasks.monitor_loop).
        register_periodic(MONITOR_SCHEDULE, "apps.monitoring.tasks.monitor_loop")
