from django.db import models


class ResourceGroup(models.Model):
    """A pool of execution capacity; also the name of the django-q2 queue its workers serve."""

    DEFAULT = "default"

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    max_concurrency = models.PositiveIntegerField(default=10)
    cpu_capacity = models.FloatField(null=True, blank=True, help_text="cores; empty: unlimited")
    memory_capacity_mb = models.PositiveIntegerField(
        null=True, blank=True, help_text="MiB; empty: unlimited"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return self.name

    @classmethod
    def get_default(cls) -> "ResourceGroup":
        group, _ = cls.objects.get_or_create(name=cls.DEFAULT)
        return group
