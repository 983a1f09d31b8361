"""Keep opscenter's django-q2 schedules in step with the projects and the database."""

from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver

from apps.projects.models import Project

from . import generation


@receiver(post_save, sender=Project, dispatch_uid="instances.generation_schedule_sync")
def project_saved(sender, instance: Project, raw: bool = False, **kwargs) -> None:
    if not raw:  # fixtures being loaded: the schedules are synced after, all at once
        generation.generation_schedule_sync(instance)


@receiver(post_delete, sender=Project, dispatch_uid="instances.generation_schedule_delete")
def project_deleted(sender, instance: Project, **kwargs) -> None:
    generation.generation_schedule_delete(instance)


@receiver(post_migrate, dispatch_uid="instances.schedules_ensure")
def migrated(sender, app_config=None, **kwargs) -> None:
    # post_migrate fires once per app; the schedules need only the last call, but the
    # work is idempotent and cheap, so run it for this app alone.
    if app_config is not None and app_config.label == "instances":
        from .tasks import schedules_ensure

        schedules_ensure()
