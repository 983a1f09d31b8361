from django.apps import AppConfig


class BackfillsConfig(AppConfig):
    name = "apps.backfills"
    label = "backfills"

    def ready(self) -> None:
        from apps.instances import admission

        from .gates import BackfillWindowGate

        admission.register(BackfillWindowGate())
