"""Keep opscenter's django-q2 schedules in step with the projects and the database, and
notice workers that died as soon as their cluster replaces them."""

import logging

from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver
from django_q.signals import post_spawn

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


logger = logging.getLogger(__name__)


@receiver(post_spawn, dispatch_uid="instances.reap_dead_workers")
def worker_spawned(sender, proc_name: str = "", **kwargs) -> None:
    """A django-q2 cluster starts a worker process when it starts and when one of its
    workers died (within half a second): the new worker first fails the attempts of dead
    workers on this machine (once their processes are gone) and starts their retries,
    instead of leaving them to the heartbeat timeout. Never keeps the worker from starting."""
    from django_q.conf import Conf

    from apps.core import clock

    from . import dispatcher

    if Conf.SYNC:
        return  # tasks run in the caller's process: no worker was spawned
    try:
        retried = dispatcher.reap_lost_attempts(now=clock.now(), only_here=True)
        if retried:
            dispatcher.tick(only_ids=retried)
    except Exception:
        logger.exception("looking for attempts of dead workers failed")
