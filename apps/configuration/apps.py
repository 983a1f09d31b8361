from django.apps import AppConfig


class ConfigurationConfig(AppConfig):
    name = "apps.configuration"
    label = "configuration"

    def ready(self) -> None:
        from apps.instances import admission

        from . import signals  # noqa: F401  (registers the receivers)
        from .gates import ResourceGroupGate, ThrottleGate

        # In this order: every claim locks its group's row, then its rules' rows.
        admission.register(ResourceGroupGate())
        admission.register(ThrottleGate())
