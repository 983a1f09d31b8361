from django.db import models

from apps.core.choices import colored


@colored({"fail": "red", "alert_only": "yellow", "kill_and_retry": "orange"})
class TimeoutAction(models.TextChoices):
    """What happens when an attempt runs past its timeout (SPEC 9)."""

    FAIL = "fail", "Fail the attempt"
    ALERT_ONLY = "alert_only", "Keep running, raise a running_longer alert"
    KILL_AND_RETRY = "kill_and_retry", "Kill the process tree and retry"


@colored({"always": "green", "failed_only": "yellow", "never": "red"})
class RerunPolicy(models.TextChoices):
    """Which manual reruns are allowed (SPEC 9)."""

    ALWAYS = "always", "Always"
    FAILED_ONLY = "failed_only", "Not of a succeeded instance"
    NEVER = "never", "Never"


@colored({"node": "blue", "project": "purple", "global": "gray"})
class RuntimeLevel(models.TextChoices):
    """Where an effective runtime value comes from: the nearest level that sets it."""

    NODE = "node", "Node"
    PROJECT = "project", "Project"
    GLOBAL = "global", "Global"


class ThrottleScope(models.TextChoices):
    """What a throttling rule counts (SPEC 9), by its scope value."""

    RESOURCE_GROUP = "resource_group", "Resource group"
    PROJECT = "project", "Project"
    NODE_TYPE = "node_type", "Node type"
    DATASOURCE = "datasource", "Datasource"
