from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "apps.backups"
    label = "backups"

    def ready(self) -> None:
        from apps.core.schedules import register_synced

        # The daily backup runs at the time the settings say: its schedule follows them.
        register_synced("apps.backups.services.backup_schedule_sync")
