from django.apps import AppConfig


class BackfillsConfig(AppConfig):
    name = "apps.backfills"
    label = "backfills"
