"""Restoring a project's monitoring: baselines, monitoring rules, field rules and its
runtime configuration, by node, baseline and channel names, through their services."""

import datetime

import pytest
from django.contrib.auth import get_user_model

from apps.backups import kinds
from apps.backups.restore import restore_backup
from apps.baselines.models import Baseline
from apps.baselines.services import baseline_create
from apps.configuration.models import RuntimeConfig
from apps.configuration.runtime import level_values
from apps.configuration.runtime_services import runtime_config_update
from apps.core.errors import ValidationFailed
from apps.monitoring.models import MonitorRule, OnCallSchedule
from apps.monitoring.services import monitor_rule_create, monitor_rule_delete, monitor_rule_update
from apps.nodes.models import Node
from apps.notifications.models import Channel
from apps.projects.models import Membership, Project
from apps.quality.models import FieldRule
from apps.quality.services import field_rule_create

from .builders import acme_setup, backup_now

MONITORING = ("baselines", "monitor_rules", "field_rules", "runtime_config")


def node_id(project, name: str) -> int:
    return Node.objects.get(project=project, name=name, env="prod").pk


def monitoring_setup(project, alice) -> None:
    """A channel, a baseline over two key nodes, three rules (project, nodes and baseline
    scopes), a field rule and the project's runtime overrides."""
    mail = Channel.objects.create(
        project=project, name="ops-mail", kind="email", config={"to": ["ops@example.com"]}
    )
    baseline = baseline_create(
        project=project,
        data={
            "name": "Report by nine",
            "committed_time": "09:00",
            "key_nodes": [node_id(project, "report"), node_id(project, "transform")],
            "recipients": {"users": ["alice"]},
            "channels": [mail.pk],
        },
        by=alice,
        source="api",
    )
    for data in [
        {
            "name": "Failures",
            "scope": {"kind": "project"},
            "triggers": [{"type": "failure"}],
            "recipients": {"owner": True, "users": ["olga"]},
            "channels": [mail.pk],
        },
        {
            "name": "Report late",
            "scope": {"kind": "nodes", "nodes": [node_id(project, "report")]},
            "triggers": [{"type": "unfinished_by", "time": "09:00"}],
            "recipients": {"owner": True},
            "dedup_minutes": 60,
        },
        {
            "name": "Baseline watch",
            "scope": {"kind": "baseline", "baseline": baseline.pk},
            "triggers": [{"type": "running_longer", "minutes": 30}],
            "recipients": {"users": ["alice"]},
        },
    ]:
        monitor_rule_create(project=project, data=data, by=alice, source="api")
    field_rule_create(
        project=project,
        data={
            "node": node_id(project, "extract"),
            "datasource": "local",
            "table": "orders",
            "metric": "row_count",
            "operator": ">",
            "threshold": 0,
        },
        by=alice,
        source="api",
    )
    runtime_config_update(project=project, values={"retries": 2}, by=alice, source="api")


def monitoring_of(project) -> dict:
    """What the backup kinds see of the project's monitoring, by name, ids left out."""
    return {
        kind.name: dict(kind.current(project))
        for kind in kinds.restorable_kinds()
        if kind.name in MONITORING
    }


@pytest.fixture
def acme(project, users):
    acme_setup(project, users)
    monitoring_setup(project, users["alice"])
    return project


@pytest.fixture
def empty(users):
    target = Project.objects.create(code="copy", name="Copy")
    for name in ("alice", "olga"):
        Membership.objects.create(project=target, user=users[name], role="admin")
    return target


def restore(backup, project, user, **kwargs):
    return restore_backup(
        backup=backup, project=project, user=user, source_project="acme", **kwargs
    )


def test_monitoring_restored_into_an_empty_project_is_the_same(acme, users, empty):
    Channel.objects.create(project=empty, name="ops-mail", kind="email", config={"to": ["x@y.z"]})
    backup = backup_now(users["root"])

    result = restore(backup, empty, users["alice"], dry_run=False)

    assert result.diffs["monitor_rules"].added == ["Baseline watch", "Failures", "Report late"]
    assert result.diffs["baselines"].added == ["Report by nine"]
    assert result.diffs["field_rules"].added == ["extract: row_count of orders"]
    assert result.diffs["runtime_config"].added == ["project"]
    assert not result.warnings
    assert monitoring_of(empty) == monitoring_of(acme)
    # Ids are the copy's own: key nodes, scoped nodes and the baseline a rule watches.
    baseline = Baseline.objects.get(project=empty)
    assert sorted(baseline.key_nodes.values_list("name", flat=True)) == ["report", "transform"]
    assert set(baseline.key_nodes.values_list("project", flat=True)) == {empty.pk}
    report = MonitorRule.objects.get(project=empty, name="Report late")
    assert report.scope["nodes"] == [node_id(empty, "report")]
    watch = MonitorRule.objects.get(project=empty, name="Baseline watch")
    assert watch.scope["baseline"] == baseline.pk
    assert FieldRule.objects.get(project=empty).node_id == node_id(empty, "extract")
    assert MonitorRule.objects.get(project=empty, name="Failures").channels.get().project == empty
    assert level_values(RuntimeConfig.objects.get(project=empty)) == {"retries": 2}

    again = restore(backup, empty, users["alice"], dry_run=True).as_dict()
    for kind in MONITORING:
        assert again[kind]["added"] == again[kind]["changed"] == again[kind]["removed"] == []


def test_a_channel_the_target_lacks_is_left_out_with_a_warning(acme, users, empty):
    backup = backup_now(users["root"])
    result = restore(backup, empty, users["alice"], dry_run=False)
    assert not result.errors
    assert any("'Failures'" in w and "ops-mail" in w for w in result.warnings)
    assert any("'Report by nine'" in w and "ops-mail" in w for w in result.warnings)
    assert not MonitorRule.objects.get(project=empty, name="Failures").channels.exists()
    assert MonitorRule.objects.filter(project=empty).count() == 3


def test_another_projects_on_call_schedule_is_left_out_with_a_warning(acme, users, empty):
    """On-call schedules are not in backups: a rule naming the source project's rotation
    is restored without it (a global one or the target's own of that name is kept)."""
    rotation = OnCallSchedule.objects.create(
        project=acme,
        name="acme-ops",
        users=["alice", "olga"],
        period="daily",
        start_date=datetime.date(2026, 11, 1),
    )
    rule = MonitorRule.objects.get(project=acme, name="Report late")
    rule.recipients = {**rule.recipients, "on_call": rotation.name}
    rule.escalate_to = {"on_call": rotation.name}
    rule.save()
    backup = backup_now(users["root"])

    result = restore(backup, empty, users["alice"], dry_run=False)
    assert not result.errors
    assert any("'Report late'" in w and "acme-ops" in w for w in result.warnings)
    copied = MonitorRule.objects.get(project=empty, name="Report late")
    assert copied.recipients["on_call"] is None and copied.recipients["owner"] is True
    assert copied.escalate_to.get("on_call") is None

    # Made global, the same schedule is named by the copy as well.
    OnCallSchedule.objects.filter(pk=rotation.pk).update(project=None)
    MonitorRule.objects.filter(pk=copied.pk).delete()
    result = restore(backup, empty, users["alice"], dry_run=False)
    assert not any("acme-ops" in w for w in result.warnings)
    copied = MonitorRule.objects.get(project=empty, name="Report late")
    assert copied.recipients["on_call"] == "acme-ops"


def test_the_diff_after_changing_adding_and_removing_rules(acme, users):
    alice = users["alice"]
    backup = backup_now(users["root"])
    before = monitoring_of(acme)
    failures = MonitorRule.objects.get(project=acme, name="Failures")
    monitor_rule_update(rule=failures, data={"dedup_minutes": 5}, by=alice, source="api")
    monitor_rule_delete(
        rule=MonitorRule.objects.get(project=acme, name="Report late"), by=alice, source="api"
    )
    monitor_rule_create(
        project=acme,
        data={"name": "Successes", "scope": {"kind": "project"}, "triggers": [{"type": "success"}]},
        by=alice,
        source="api",
    )
    changed = monitoring_of(acme)

    dry = restore(backup, acme, alice, dry_run=True).as_dict()
    assert dry["monitor_rules"] == {
        "added": ["Report late"],
        "changed": ["Failures"],
        "removed": ["Successes"],
        "unchanged": ["Baseline watch"],
    }
    assert dry["baselines"]["unchanged"] == ["Report by nine"]
    assert set(dry) >= {"nodes", "variables", "datasources", "resources", *MONITORING}
    assert monitoring_of(acme) == changed

    # Without remove_missing the rule the backup lacks stays; with it, it goes.
    restore(backup, acme, alice, dry_run=False)
    assert MonitorRule.objects.get(project=acme, name="Failures").dedup_minutes == 30
    assert MonitorRule.objects.filter(project=acme, name="Successes").exists()
    assert MonitorRule.objects.filter(project=acme, name="Report late").exists()
    result = restore(backup, acme, alice, dry_run=False, remove_missing=True)
    assert result.diffs["monitor_rules"].removed == ["Successes"]
    assert not MonitorRule.objects.filter(project=acme, name="Successes").exists()
    assert monitoring_of(acme) == before


def test_a_rule_naming_an_unknown_user_is_refused_changing_nothing(acme, users, empty):
    gone = get_user_model().objects.create_user("gone", "gone@example.com", "pw-gone-123")
    monitor_rule_create(
        project=acme,
        data={
            "name": "To gone",
            "scope": {"kind": "project"},
            "triggers": [{"type": "failure"}],
            "recipients": {"users": ["gone"]},
        },
        by=users["alice"],
        source="api",
    )
    backup = backup_now(users["root"])
    gone.delete()

    dry = restore(backup, empty, users["alice"], dry_run=True)
    assert {"field": "monitor_rules.To gone.recipients.users", "message": "no user 'gone'"} in [
        {"field": e["field"], "message": e["message"]} for e in dry.errors
    ]
    with pytest.raises(ValidationFailed) as caught:
        restore(backup, empty, users["alice"], dry_run=False)
    assert [e["field"] for e in caught.value.errors] == ["monitor_rules.To gone.recipients.users"]
    assert not Node.objects.filter(project=empty).exists()
    assert not MonitorRule.objects.filter(project=empty).exists()
    assert not Baseline.objects.filter(project=empty).exists()
    assert not FieldRule.objects.filter(project=empty).exists()
    assert not RuntimeConfig.objects.filter(project=empty).exists()


def test_the_restore_page_shows_the_monitoring_rows(acme, users, client):
    client.force_login(users["alice"])
    backup = backup_now(users["root"])
    MonitorRule.objects.filter(project=acme, name="Report late").delete()
    html = client.get(
        f"/backups/{backup.pk}/restore/?project=acme&source_project=acme"
    ).content.decode()
    for kind, label in [
        ("monitor_rules", "Monitoring rules"),
        ("baselines", "Baselines"),
        ("field_rules", "Field rules"),
        ("runtime_config", "Runtime configuration"),
        ("nodes", "Nodes"),
    ]:
        assert f'<tr data-kind="{kind}">' in html and f"<th>{label}</th>" in html
    row = html.split('<tr data-kind="monitor_rules">')[1].split("</tr>")[0]
    assert "Report late" in row.split('data-part="added"')[1].split("</td>")[0]
