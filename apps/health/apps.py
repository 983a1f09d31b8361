from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "apps.health"
    label = "health"

    def ready(self) -> None:
        # The monitor's minute pass records the clusters it sees, so one that dies
        # between two views of the health page is still shown, as dead.
        from apps.monitoring.tasks import MINUTE_CHECKS

        from .services import clusters_record, dead_clusters_alert

        MINUTE_CHECKS["clusters_seen"] = clusters_record
        # After the record: a cluster that died since the last pass is alerted on.
        MINUTE_CHECKS["clusters_dead"] = dead_clusters_alert
