"""Worker processes of a django-q2 cluster say which queue their cluster serves
(clusters.record_queue): when they start, and with a task at most every few minutes."""

import logging

from django.dispatch import receiver
from django_q.signals import post_spawn, pre_execute

from . import clusters

logger = logging.getLogger(__name__)


@receiver(post_spawn, dispatch_uid="configuration.cluster_queue_spawn")
def worker_spawned(sender, **kwargs) -> None:
    _record(force=True)


@receiver(pre_execute, dispatch_uid="configuration.cluster_queue_task")
def task_starting(sender, **kwargs) -> None:
    _record(force=False)


def _record(*, force: bool) -> None:
    from django_q.conf import Conf

    if Conf.SYNC:
        return  # tasks run in the caller's process: there is no cluster
    try:
        clusters.record_queue(force=force)
    except Exception:  # never keep a worker from starting or a task from running
        logger.exception("recording the cluster's queue failed")
