from django.db import models

from apps.core.choices import colored


class NodeType(models.TextChoices):
    SHELL = "shell", "Shell"
    PYTHON = "python", "Python"
    SQL = "sql", "SQL"
    HTTP = "http", "HTTP"
    VIRTUAL = "virtual", "Virtual"


class ScheduleType(models.TextChoices):
    RECURRING = "recurring", "Recurring"
    ONE_TIME = "one_time", "One-time (manual)"
    REALTIME = "realtime", "Real-time"


class Env(models.TextChoices):
    DEV = "dev", "Dev"
    PROD = "prod", "Prod"


@colored({"online": "green", "offline": "gray"})
class NodeStatus(models.TextChoices):
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
