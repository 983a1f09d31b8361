"""Re-encrypting every stored secret with the newest encryption key (key rotation).

The secrets at rest: datasource passwords (apps.projects) and notification channel secrets
(apps.notifications). Each row is locked, re-read and rewritten in its own transaction,
so an edit made meanwhile is neither lost nor overwritten with a stale value.
"""

from dataclasses import dataclass, field

from django.apps import apps
from django.db import transaction

from . import crypto


@dataclass
class RotationResult:
    rotated: dict[str, int] = field(default_factory=dict)  # per kind of secret
    # Secrets no key decrypts: (kind, which object, which field); they are left as stored.
    undecryptable: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.rotated.values())


def secrets_rotate() -> RotationResult:
    result = RotationResult()
    _rotate_datasources(result)
    _rotate_channels(result)
    return result


def _rotate_datasources(result: RotationResult) -> None:
    Datasource = apps.get_model("projects", "Datasource")
    result.rotated["datasource passwords"] = 0
    ids = Datasource.objects.exclude(password_encrypted="").values_list("pk", flat=True)
    for pk in list(ids):
        with transaction.atomic():
            row = Datasource.objects.select_for_update().filter(pk=pk).first()
            if row is None or not row.password_encrypted:
                continue
            try:
                row.password_encrypted = crypto.reencrypt(row.password_encrypted)
            except ValueError:
                result.undecryptable.append(("datasource", str(row), "password"))
                continue
            row.save(update_fields=["password_encrypted"])
            result.rotated["datasource passwords"] += 1


def _rotate_channels(result: RotationResult) -> None:
    Channel = apps.get_model("notifications", "Channel")
    result.rotated["channel secrets"] = 0
    for pk in list(Channel.objects.exclude(secrets={}).values_list("pk", flat=True)):
        with transaction.atomic():
            row = Channel.objects.select_for_update().filter(pk=pk).first()
            if row is None or not row.secrets:
                continue
            secrets = dict(row.secrets)
            for key, token in row.secrets.items():
                try:
                    secrets[key] = crypto.reencrypt(token)
                except ValueError:
                    result.undecryptable.append(("channel", row.name, key))
                    continue
                result.rotated["channel secrets"] += 1
            row.secrets = secrets
            row.save(update_fields=["secrets"])
