"""The periodic django-q2 schedules of opscenter's apps, declared by each app (in its
AppConfig.ready) and created in one idempotent place (instances.tasks.schedules_ensure),
so the engine does not import the features that plug into it."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str  # dotted path of the task
    minutes: int = 1


PERIODIC: dict[str, Periodic] = {}


def register_periodic(name: str, func: str, *, minutes: int = 1) -> None:
    PERIODIC[name] = Periodic(name=name, func=func, minutes=minutes)
