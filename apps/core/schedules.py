"""The periodic django-q2 schedules of opscenter's apps, declared by each app (in its
AppConfig.ready) and created in one idempotent place (instances.tasks.schedules_ensure),
so the engine does not import the features that plug into it.

Periodic loops run every few minutes. A schedule whose time an operator chooses (the
daily backup) registers instead the function that creates, changes or removes it from
the settings; the app calls it again whenever those settings change."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str  # dotted path of the task
    minutes: int = 1


PERIODIC: dict[str, Periodic] = {}


def register_periodic(name: str, func: str, *, minutes: int = 1) -> None:
    PERIODIC[name] = Periodic(name=name, func=func, minutes=minutes)


# Dotted paths of functions that bring a settings-driven schedule in step (idempotent).
SYNCED: list[str] = []


def register_synced(func: str) -> None:
    if func not in SYNCED:
        SYNCED.append(func)
