"""`python manage.py opscenter <command>` subcommands of monitoring: alerts from a
terminal."""

import datetime

from django.core.management.base import CommandError

from apps.core.cli import Subcommand, acting_user, as_user_argument
from apps.core.pagination import DEFAULT_LIMIT

from . import services
from .alert_selectors import AlertFilters, alert_filter, alerts_page, alerts_visible_to
from .choices import AlertState, Severity

COLUMNS = ("ID", "STATE", "SEVERITY", "COUNT", "LAST_AT", "TITLE")


def _alerts_configure(parser) -> None:
    parser.add_argument(
        "--state", default="", help=f"{', '.join(AlertState.values)}, or open (not resolved)"
    )
    parser.add_argument("--project", default="", help="a project's code")
    parser.add_argument("--severity", default="", help=", ".join(Severity.values))
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"how many rows (default {DEFAULT_LIMIT})"
    )
    as_user_argument(parser)


def _when(alert) -> str:
    tz = alert.project.tz if alert.project_id else datetime.UTC
    return alert.last_at.astimezone(tz).isoformat(sep=" ", timespec="seconds")


def _alerts_run(command, options: dict) -> None:
    user = acting_user(options["as_user"])
    filters = AlertFilters(
        project=options["project"].strip(),
        state=options["state"].strip(),
        severity=options["severity"].strip(),
    )
    queryset = alert_filter(alerts_visible_to(user), filters)
    page = alerts_page(queryset, cursor=None, limit=options["limit"])
    if not page.items:
        command.stdout.write("no alerts")
        return
    rows = [(str(a.pk), a.state, a.severity, str(a.count), _when(a), a.title) for a in page.items]
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS) - 1)]
    for row in [COLUMNS, *rows]:
        cells = [
            cell.rjust(w) if i in (0, 3) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        command.stdout.write("  ".join([*cells, row[-1]]))
    if page.next_cursor:
        command.stdout.write(f"(the newest {len(rows)}; more with --limit)")


def _alert_configure(parser) -> None:
    parser.add_argument("action", choices=["ack", "resolve"])
    parser.add_argument("ids", nargs="+", type=int, metavar="ID", help="alert ids")
    parser.add_argument("--comment", default="", help="why, for the alert's timeline")
    as_user_argument(parser)


def _alert_run(command, options: dict) -> None:
    user = acting_user(options["as_user"])
    results = services.alerts_batch(
        ids=options["ids"],
        action=options["action"],
        by=user,
        source="cli",
        comment=options["comment"],
    )
    refused = 0
    for item in results:
        if item.ok:
            command.stdout.write(f"alert {item.id}: {options['action']}: now {item.state}")
        else:
            refused += 1
            command.stdout.write(f"alert {item.id}: refused: {item.message}")
    if refused:
        raise CommandError(f"{refused} of {len(results)} refused")


def _monitor_run(command, options: dict) -> None:
    from .tasks import monitor_pass

    result = monitor_pass()
    command.stdout.write(", ".join(f"{name.replace('_', ' ')}: {n}" for name, n in result.items()))


COMMANDS = {
    "monitor": Subcommand(
        help="one monitor pass, as the schedule runs it: the state changes not yet handled "
        "(failures, successes), time rules, escalation, deliveries due for a retry",
        run=_monitor_run,
    ),
    "alerts": Subcommand(
        help="alerts, the most recently active first: id, state, severity, count, last time, title",
        run=_alerts_run,
        configure=_alerts_configure,
    ),
    "alert": Subcommand(
        help="acknowledge (ack) or resolve alerts by id, with an optional --comment",
        run=_alert_run,
        configure=_alert_configure,
    ),
}
