"""django-q2 tasks of backups. Thin: call a service."""

import logging

from django.db import close_old_connections

from .choices import Trigger
from .models import BackupSettings
from .services import BackupFailed, backup_create, backups_expire

logger = logging.getLogger(__name__)


def backup_daily() -> dict:
    """The "backup" schedule fires this at the configured time (apps.backups.services.
    backup_schedule_sync): a backup of every project while enabled, then the expired
    ones go. A failed backup is recorded (state failed, its error) and does not keep the
    expired from going."""
    try:
        made = None
        if BackupSettings.get().enabled:
            try:
                made = backup_create(trigger=Trigger.SCHEDULED, source="system").pk
            except BackupFailed as exc:
                logger.error("scheduled backup failed: %s", exc.detail)
        return {"backup": made, "expired": backups_expire()}
    finally:
        close_old_connections()
