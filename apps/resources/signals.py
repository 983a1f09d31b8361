"""A deleted resource version's file leaves storage once the deletion is committed,
whatever deleted the row (a resource deleted, or its project with everything in it)."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import ResourceVersion


@receiver(post_delete, sender=ResourceVersion, dispatch_uid="resource_version_file_delete")
def _file_delete(sender, instance: ResourceVersion, **kwargs) -> None:
    if instance.file.name:
        storage, name = instance.file.storage, instance.file.name
        transaction.on_commit(lambda: storage.delete(name))
