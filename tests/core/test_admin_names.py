"""Every model in the admin's index is named by its proper plural ("Node dependencies",
not "Node dependencys")."""

from django.contrib import admin
from django.test import RequestFactory

# Every registered model's name in the admin index, as it should read. A model registered
# later that is not here is held to the general rule of test_no_plural_is_misspelt.
EXPECTED_NAMES = {
    ("accounts", "ApiToken"): "API tokens",
    ("accounts", "Profile"): "Profiles",
    ("audit", "OperationLog"): "Operation logs",
    ("auth", "Group"): "Groups",
    ("auth", "User"): "Users",
    ("axes", "AccessAttempt"): "Access attempts",
    ("axes", "AccessFailureLog"): "Access failures",
    ("axes", "AccessLog"): "Access logs",
    ("backfills", "Backfill"): "Backfills",
    ("baselines", "Baseline"): "Baselines",
    ("baselines", "BaselineCycle"): "Baseline cycles",
    ("configuration", "ResourceGroup"): "Resource groups",
    ("configuration", "ThrottleRule"): "Throttle rules",
    ("django_q", "Failure"): "Failed tasks",
    ("django_q", "OrmQ"): "Queued tasks",
    ("django_q", "Schedule"): "Scheduled tasks",
    ("django_q", "Success"): "Successful tasks",
    ("instances", "Attempt"): "Attempts",
    ("instances", "GenerationRun"): "Generation runs",
    ("instances", "Instance"): "Instances",
    ("instances", "InstanceDependency"): "Instance dependencies",
    ("monitoring", "Alert"): "Alerts",
    ("monitoring", "AlertEvent"): "Alert events",
    ("monitoring", "MonitorRule"): "Monitor rules",
    ("monitoring", "OnCallSchedule"): "On-call schedules",
    ("nodes", "Node"): "Nodes",
    ("nodes", "NodeDependency"): "Node dependencies",
    ("nodes", "NodeVersion"): "Node versions",
    ("notifications", "Channel"): "Channels",
    ("notifications", "Delivery"): "Deliveries",
    ("projects", "Datasource"): "Datasources",
    ("projects", "Membership"): "Memberships",
    ("projects", "Project"): "Projects",
    ("projects", "Variable"): "Variables",
    ("quality", "FieldRule"): "Field rules",
    ("quality", "FieldRuleResult"): "Field rule results",
}


def _index_names(users) -> dict[tuple[str, str], str]:
    request = RequestFactory().get("/admin/")
    request.user = users["root"]
    names = {}
    for app in admin.site.get_app_list(request):
        for model in app["models"]:
            names[(app["app_label"], model["object_name"])] = str(model["name"])
    return names


def test_every_known_model_has_its_proper_plural_in_the_index(users):
    names = _index_names(users)
    known = {key: names.get(key) for key in EXPECTED_NAMES}
    assert known == EXPECTED_NAMES


def test_no_plural_is_misspelt(users):
    for (app_label, object_name), name in _index_names(users).items():
        word = name.split()[-1].lower()
        where = f"{app_label}.{object_name}: {name!r}"
        assert not (word.endswith("ss") and not word.endswith("sses")), where
        assert not (word.endswith("ys") and word[-3] not in "aeiou"), where
