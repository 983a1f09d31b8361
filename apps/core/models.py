from django.db import models


class LoopTurn(models.Model):
    """Whose turn it is to run a periodic loop (apps.core.loops): the run that started
    last. The run it replaces sees that at its next pass and ends."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=64)
    taken_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} ({self.holder[:8]} since {self.taken_at:%Y-%m-%d %H:%M:%S})"
