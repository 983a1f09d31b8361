from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"

    def ready(self) -> None:
        from apps.core.schedules import register_periodic

        # Events within seconds, time rules and escalation every minute (tasks.monitor_loop).
        register_periodic("monitor", "apps.monitoring.tasks.monitor_loop")
