from django.db import models

from apps.core.choices import colored


class Source(models.TextChoices):
    UI = "ui", "Page"
    API = "api", "API"
    CLI = "cli", "CLI"
    SYSTEM = "system", "System"


@colored({"ok": "green", "refused": "orange", "failed": "red"})
class Result(models.TextChoices):
    OK = "ok", "OK"
    REFUSED = "refused", "Refused"
    FAILED = "failed", "Failed"
