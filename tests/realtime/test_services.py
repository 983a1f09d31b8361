"""Realtime nodes without processes: their instance, start / stop / resources, roles."""

import pytest

from apps.audit.models import OperationLog
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.instances import dispatcher
from apps.instances.models import Instance
from apps.realtime.models import RealtimeSettings
from apps.realtime.services import (
    realtime_change_resources,
    realtime_start,
    realtime_stop,
)

from .conftest import realtime_spec

pytestmark = pytest.mark.django_db


def test_publish_creates_one_stopped_instance_and_republish_keeps_it(publish_realtime):
    (node,) = publish_realtime(
        realtime_spec(),
        {
            "name": "daily",
            "type": "virtual",
            "schedule": {"type": "recurring", "cron": "0 2 * * *"},
        },
    )[:1]
    instance = Instance.objects.get(node=node)
    assert (instance.kind, instance.state, instance.version_id) == (
        "realtime",
        "stopped",
        node.current_version_id,
    )
    assert RealtimeSettings.objects.get(node=node).instance == instance
    # The recurring node gets no realtime instance.
    assert Instance.objects.count() == 1

    (node,) = publish_realtime(realtime_spec(content="echo v2; sleep 100\n"))
    assert node.version == 2
    assert list(Instance.objects.filter(node=node)) == [instance]
    instance.refresh_from_db()
    assert instance.version.number == 1  # updated at the next start

    realtime_start(node=node, by=node.owner, source="api")
    instance.refresh_from_db()
    assert (instance.state, instance.version.number) == ("starting", 2)


def test_the_batch_dispatcher_never_takes_realtime_instances(publish_realtime, users):
    (node,) = publish_realtime(realtime_spec())
    result = dispatcher.tick(enqueue=lambda group, ids: None)
    assert result.queued == []
    realtime_start(node=node, by=users["olga"], source="api")
    result = dispatcher.tick(enqueue=lambda group, ids: None)
    assert result.queued == []
    assert Instance.objects.get(node=node).state == "starting"


def test_start_stop_transitions_and_refusals(publish_realtime, users):
    (node,) = publish_realtime(realtime_spec())
    olga = users["olga"]
    with pytest.raises(Conflict, match="stopped: only a starting or running one can stop"):
        realtime_stop(node=node, by=olga, source="api")

    realtime_start(node=node, by=olga, source="ui")
    with pytest.raises(Conflict, match="is starting: only a stopped or failed one can start"):
        realtime_start(node=node, by=olga, source="api")
    # Not claimed by a supervisor yet: stopped at once.
    assert realtime_stop(node=node, by=olga, source="api").state == "stopped"

    realtime_start(node=node, by=olga, source="api")
    instance = Instance.objects.get(node=node)
    Instance.objects.filter(pk=instance.pk).update(state="running")
    row = RealtimeSettings.objects.get(node=node)
    row.supervisor, row.heartbeat_at = "host:1", instance.started_at
    row.save()
    with pytest.raises(Conflict, match="is running"):
        realtime_start(node=node, by=olga, source="api")
    # A live supervisor runs it: stopping, and the supervisor finishes the stop.
    assert realtime_stop(node=node, by=olga, source="api").state == "stopping"
    with pytest.raises(Conflict, match="is stopping"):
        realtime_stop(node=node, by=olga, source="api")

    actions = list(OperationLog.objects.filter(object_type="node").values_list("action", "result"))
    assert actions.count(("realtime_start", "ok")) == 2
    assert actions.count(("realtime_stop", "ok")) == 2
    assert ("realtime_start", "refused") in actions and ("realtime_stop", "refused") in actions


def test_stop_with_a_lost_supervisor_stops_at_once(publish_realtime, users, settings):
    (node,) = publish_realtime(realtime_spec())
    realtime_start(node=node, by=users["olga"], source="api")
    Instance.objects.filter(node=node).update(state="running")
    # No heartbeat at all: nobody runs it.
    assert realtime_stop(node=node, by=users["olga"], source="api").state == "stopped"


def test_roles_operator_in_prod_developer_in_dev(publish_realtime, users, project):
    project.env_mode = "dev_prod"
    project.save()
    (prod,) = publish_realtime(realtime_spec())
    for name in ["dave", "vera"]:
        with pytest.raises(PermissionDenied):
            realtime_start(node=prod, by=users[name], source="api")
    with pytest.raises(NotFound):  # not a member: the project does not exist for them
        realtime_start(node=prod, by=users["stranger"], source="api")
    with pytest.raises(PermissionDenied):
        realtime_change_resources(node=prod, by=users["dave"], source="api", cpu=2)
    assert Instance.objects.get(node=prod).state == "stopped"
    assert OperationLog.objects.filter(action="realtime_start", result="refused").count() == 3

    (dev,) = publish_realtime(realtime_spec(), env="dev")
    assert realtime_start(node=dev, by=users["dave"], source="api").state == "starting"


def test_not_a_realtime_node_is_refused(publish_realtime, users):
    (node,) = publish_realtime(
        {"name": "daily", "type": "virtual", "schedule": {"type": "recurring", "cron": "0 2 * * *"}}
    )
    with pytest.raises(Conflict, match="not a realtime node"):
        realtime_start(node=node, by=users["olga"], source="api")


def test_offline_realtime_node_does_not_start(publish_realtime, users):
    (node,) = publish_realtime(realtime_spec())
    type(node).objects.filter(pk=node.pk).update(status="offline")
    with pytest.raises(Conflict, match="offline"):
        realtime_start(node=node, by=users["olga"], source="api")


def test_resources_are_stored_and_validated(publish_realtime, users):
    (node,) = publish_realtime(realtime_spec(cpu=1, memory_mb=256))
    row = realtime_change_resources(
        node=node, by=users["olga"], source="api", cpu=2.5, memory_mb=1024
    )
    assert (row.cpu, row.memory_mb, row.applied_cpu) == (2.5, 1024, None)
    entry = OperationLog.objects.get(action="realtime_resources", result="ok")
    assert entry.detail["before"]["cpu"] is None and entry.detail["after"]["cpu"] == 2.5

    with pytest.raises(ValidationFailed) as caught:
        realtime_change_resources(
            node=node, by=users["olga"], source="api", cpu=-1, memory_mb=0, restart_limit=-2
        )
    assert {e["field"] for e in caught.value.errors} == {"cpu", "memory_mb", "restart_limit"}
    with pytest.raises(ValidationFailed, match="cpu"):
        realtime_change_resources(node=node, by=users["olga"], source="api")
    row.refresh_from_db()
    assert (row.cpu, row.memory_mb) == (2.5, 1024)
