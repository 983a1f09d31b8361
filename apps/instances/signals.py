"""Keep each project's nightly generation schedule in step with the project."""

from django.db.models.signals import post_delete, post_save
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
