"""Choices that carry their display colour, so a badge is never a template if-chain."""

from collections.abc import Callable

from django.db import models


def colored(colors: dict[str, str], default: str = "gray") -> Callable[[type], type]:
    """Give a TextChoices class `member.color` and `Class.colors()`."""

    def decorate(cls: type[models.TextChoices]) -> type[models.TextChoices]:
        unknown = set(colors) - set(cls.values)
        if unknown:
            raise ValueError(f"colours for unknown {cls.__name__} values: {sorted(unknown)}")
        cls.color = property(lambda member: colors.get(member.value, default))
        cls.colors = classmethod(lambda klass: {v: colors.get(v, default) for v in klass.values})
        return cls

    return decorate
