from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "apps.quality"
    label = "quality"
    verbose_name = "Data quality"

    def ready(self) -> None:
        from apps.instances import checks as instance_checks

        from .checks import field_rules_check

        # After an instance's command succeeded and before its attempt is recorded (so
        # before its children are released), its node's field rules run.
        instance_checks.register("field rules", field_rules_check)
