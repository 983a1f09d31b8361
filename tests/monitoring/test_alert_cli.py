"""`opscenter alerts` and `opscenter alert ack|resolve` from a terminal."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.models import OperationLog
from apps.monitoring.models import Alert, AlertEvent
from apps.projects.models import Project

from .alert_rows import alert_make


def run(*args) -> str:
    out = io.StringIO()
    call_command("opscenter", *args, stdout=out)
    return out.getvalue()


def test_alerts_prints_a_table_newest_activity_first(project):
    old = alert_make(project, title="acme.ingest failed", minutes_before=60, count=4)
    new = alert_make(project, title="acme.report failed", severity="warning")
    lines = run("alerts").splitlines()
    assert lines[0].split() == ["ID", "STATE", "SEVERITY", "COUNT", "LAST_AT", "TITLE"]
    assert lines[1].split() == [
        str(new.pk),
        "firing",
        "warning",
        "1",
        "2026-11-22",
        "10:00:00+08:00",  # the project's timezone
        "acme.report",
        "failed",
    ]
    assert lines[2].split()[:4] == [str(old.pk), "firing", "critical", "4"]
    assert lines[2].endswith("acme.ingest failed")
    assert len(lines) == 3


def test_alerts_filters_and_limit(project, users):
    beta = Project.objects.create(code="beta", name="Beta")
    firing = alert_make(project)
    alert_make(project, state="resolved", minutes_before=5)
    theirs = alert_make(beta, minutes_before=10)
    out = run("alerts", "--state", "firing", "--project", "acme")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(firing.pk)]
    out = run("alerts", "--limit", "1")
    assert out.splitlines()[1].split()[0] == str(firing.pk)
    assert "more with --limit" in out.splitlines()[-1]
    # Acting as a member, only the member's projects.
    out = run("alerts", "--as", "vera")
    assert str(theirs.pk) not in [line.split()[0] for line in out.splitlines()[1:]]
    assert run("alerts", "--project", "nope") == "no alerts\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--state", "burning"], "state"),
        (["--severity", "loud"], "severity"),
        (["--limit", "0"], "limit"),
        (["--as", "ghost"], "--as: unknown user 'ghost'"),
    ],
)
def test_alerts_bad_options_are_clear_errors(project, args, message):
    alert_make(project)
    with pytest.raises(CommandError, match=message):
        run("alerts", *args)


def test_ack_and_resolve_as_a_named_user_from_the_cli(project):
    alert = alert_make(project)
    out = run("alert", "ack", str(alert.pk), "--comment", "on it", "--as", "olga")
    assert out.strip() == f"alert {alert.pk}: ack: now acknowledged"
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by.username) == ("acknowledged", "olga")
    event = AlertEvent.objects.get(alert=alert, kind="acknowledged")
    assert event.comment == "on it"
    record = OperationLog.objects.get(object_type="alert", action="ack")
    assert (record.source, record.username, record.result) == ("cli", "olga", "ok")
    out = run("alert", "resolve", str(alert.pk), "--user", "olga")
    assert out.strip() == f"alert {alert.pk}: resolve: now resolved"
    assert Alert.objects.get(pk=alert.pk).resolved_by.username == "olga"


def test_without_as_the_first_superuser_acts(project):
    alert = alert_make(project)
    run("alert", "resolve", str(alert.pk))
    assert OperationLog.objects.get(object_type="alert").username == "root"


def test_refusals_are_reported_per_alert_and_fail_the_command(project):
    firing = alert_make(project)
    done = alert_make(project, state="resolved")
    out = io.StringIO()
    with pytest.raises(CommandError, match="3 of 3 refused"):
        call_command(
            "opscenter",
            "alert",
            "ack",
            str(firing.pk),
            str(done.pk),
            "424242",
            "--as",
            "vera",
            stdout=out,
        )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"alert {firing.pk}: refused: this needs the operator role")
    assert lines[1].startswith(f"alert {done.pk}: refused:")
    assert lines[2] == "alert 424242: refused: alert 424242 not found"
    assert Alert.objects.get(pk=firing.pk).state == "firing"
    assert OperationLog.objects.filter(result="refused", username="vera").count() == 2


def test_one_refusal_does_not_stop_the_others(project):
    firing = alert_make(project)
    done = alert_make(project, state="resolved")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 refused"):
        call_command("opscenter", "alert", "resolve", str(done.pk), str(firing.pk), stdout=out)
    assert Alert.objects.get(pk=firing.pk).state == "resolved"
    assert f"alert {done.pk}: refused: alert {done.pk} is already resolved" in out.getvalue()


def test_the_action_and_ids_are_checked_by_the_parser(project):
    with pytest.raises(CommandError):
        run("alert", "close", "1")
    with pytest.raises(CommandError):
        run("alert", "ack", "one")
