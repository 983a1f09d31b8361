"""The demo: a project with real pipelines and a few days of history made by running them.

Everything here is idempotent: running the demo again publishes nothing new (the specs
did not change), generates no duplicate instance and only runs what is still due.
"""

import datetime
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from apps.configuration.models import ResourceGroup
from apps.core import clock
from apps.core.errors import ValidationFailed
from apps.projects.choices import DatasourceKind, Role
from apps.projects.models import Datasource, Membership, Project, Variable

PROJECT_CODE = "demo"
DATASOURCE_NAME = "warehouse"
PIPELINES_DIR = Path(__file__).resolve().parent / "pipelines"
RESOURCES_DIR = Path(__file__).resolve().parent / "resources"
# How long drain may wait for work that becomes ready later, such as the flaky node's
# retry 5 s after its failure. Past days get enough for their retries; today gets only a
# moment, so the demo does not sit waiting for the next hour's ingestion.
PAST_DAY_DRAIN_SECONDS = 60.0
TODAY_DRAIN_SECONDS = 3.0
# The day (days before today) whose returns file arrives after the day ran: the latest
# day of history, so a new user finds a failure to diagnose at once.
LATE_RETURNS_OFFSET = 1

# (username, role in the demo project, password). Passwords are printed by the command:
# these are demo accounts, never for a real deployment.
DEMO_USERS = [
    ("dana", Role.DEVELOPER, "dana-demo"),
    ("oscar", Role.OPERATOR, "oscar-demo"),
    ("vicky", Role.VIEWER, "vicky-demo"),
]

CUSTOMERS = [
    (1, "Ada Byte", "Berlin"),
    (2, "Ben Ledger", "Paris"),
    (3, "Cleo Query", "Madrid"),
    (4, "Dev Null", "Berlin"),
    (5, "Eve Index", "Lisbon"),
    (6, "Finn Fetch", "Vienna"),
    (7, "Gia Join", "Paris"),
    (8, "Hal Hash", "Rome"),
    (9, "Ivy Insert", "Madrid"),
    (10, "Jon Json", "Berlin"),
    (11, "Kim Key", "Prague"),
    (12, "Lea Lock", "Vienna"),
]
PRODUCTS = [
    (1, "Espresso beans 1kg", "coffee", 24.50),
    (2, "Filter beans 1kg", "coffee", 19.90),
    (3, "Green tea 250g", "tea", 9.80),
    (4, "Earl grey 250g", "tea", 8.40),
    (5, "Grinder", "equipment", 89.00),
    (6, "Kettle", "equipment", 59.00),
    (7, "Mug", "accessories", 12.00),
    (8, "Milk frother", "equipment", 45.00),
]


@dataclass
class DemoResult:
    project: Project
    warehouse_path: Path
    published: dict[str, list[str]]
    days: list[datetime.date] = field(default_factory=list)
    instances_created: int = 0


def warehouse_path() -> Path:
    return Path(settings.VAR_DIR) / "demo_warehouse.sqlite3"


def scratch_dir() -> Path:
    return Path(settings.VAR_DIR) / "demo_scratch"


def warehouse_seed(*, path: Path) -> None:
    """The raw tables the pipelines read; the pipelines create everything downstream."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE IF NOT EXISTS raw_customers (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS raw_products (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
                price REAL NOT NULL
            );
            CREATE TABLE IF NOT EXISTS raw_orders (
                order_id TEXT PRIMARY KEY, batch TEXT NOT NULL, biz_date TEXT NOT NULL,
                ordered_at TEXT NOT NULL, customer_id INTEGER NOT NULL,
                product_id INTEGER NOT NULL, quantity INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS raw_orders_biz_date ON raw_orders (biz_date);
            CREATE TABLE IF NOT EXISTS raw_returns (
                biz_date TEXT NOT NULL, order_id TEXT NOT NULL, reason TEXT NOT NULL,
                PRIMARY KEY (biz_date, order_id)
            );
            """
        )
        db.executemany("INSERT OR IGNORE INTO raw_customers VALUES (?, ?, ?)", CUSTOMERS)
        db.executemany("INSERT OR IGNORE INTO raw_products VALUES (?, ?, ?, ?)", PRODUCTS)
    db.close()


# The returns the partner reports for a day: (hour, number of the order in that hour,
# reason), naming orders as ingest_orders does ("<bizdate>-<HH>-<i>").
RETURNS = [(9, 2, "damaged"), (14, 1, "wrong item"), (20, 4, "changed mind")]


def partner_returns_path(biz_date: datetime.date) -> Path:
    return scratch_dir() / "partner_returns" / f"{biz_date:%Y%m%d}.csv"


def partner_returns_write(*, biz_date: datetime.date) -> Path:
    """The partner's returns file of `biz_date`, as load_returns reads it."""
    path = partner_returns_path(biz_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["order_id,reason"] + [
        f"{biz_date:%Y%m%d}-{hour:02d}-{number},{reason}" for hour, number, reason in RETURNS
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def pipeline_specs(*, directory: Path = PIPELINES_DIR) -> list[dict]:
    """Every NodeSpec of every pipeline file, as one batch (files depend on each other).
    Each file's nodes are in the node group named after it, as `opscenter publish FILE`
    puts them."""
    from apps.nodes.validation import group_default

    specs: list[dict] = []
    for path in sorted(directory.glob("*.yaml")):
        document = yaml.safe_load(path.read_text()) or {}
        specs.extend(group_default(document.get("nodes", []), path.stem))
    return specs


@transaction.atomic
def demo_project_setup() -> Project:
    """The project, its members, its warehouse datasource and variables."""
    # The demo's nodes run in the default resource group (a migration creates it; an
    # emptied database may have lost it).
    ResourceGroup.get_default()
    project, _ = Project.objects.get_or_create(
        code=PROJECT_CODE,
        defaults=dict(
            name="Demo shop analytics",
            description="Hourly order ingestion, a daily sales chain, checks and exports.",
            timezone=settings.TIME_ZONE,
            generation_time=datetime.time(23, 0),
        ),
    )
    User = get_user_model()
    for username, role, password in DEMO_USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username, f"{username}@example.com", password)
        Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})

    path = warehouse_path()
    Datasource.objects.update_or_create(
        project=project,
        name=DATASOURCE_NAME,
        defaults=dict(kind=DatasourceKind.SQLITE, path=str(path), dsn=""),
    )
    for name, value in [("warehouse_path", str(path)), ("scratch_dir", str(scratch_dir()))]:
        Variable.objects.update_or_create(project=project, name=name, defaults={"value": value})
    demo_resources_upload(project)
    return project


def demo_resources_upload(project: Project) -> None:
    """The project files the pipelines name (`resources:`): uploaded again, the same
    content makes no new version."""
    from django.core.files import File

    from apps.resources.services import resource_upload

    owner = get_user_model().objects.get(username=DEMO_USERS[0][0])
    for path in sorted(RESOURCES_DIR.iterdir()):
        with path.open("rb") as data:
            resource_upload(
                project=project, name=path.name, fileobj=File(data), user=owner, source="cli"
            )


def demo_monitoring_setup(project: Project) -> None:
    """What watches the demo: an on-call rotation, an email channel (Django's email
    backend: the console unless EMAIL_BACKEND says otherwise), two rules — failures
    of any node to its owner and whoever is on call, and the daily report late at 09:00
    — and the daily report's baseline."""
    from apps.monitoring.models import MonitorRule, OnCallSchedule
    from apps.monitoring.rules import validate_rule
    from apps.nodes.models import Node
    from apps.notifications.models import Channel

    on_call, _ = OnCallSchedule.objects.get_or_create(
        name="demo-ops",
        defaults=dict(
            project=project,
            users=["oscar", "dana"],
            period="weekly",
            handover=datetime.time(9, 0),
            start_date=datetime.date(2026, 1, 5),
            timezone=project.timezone,
        ),
    )
    channel, _ = Channel.objects.get_or_create(
        project=project,
        name="ops-email",
        defaults=dict(kind="email", config={"to": ["data-ops@example.com"]}),
    )
    report = Node.objects.filter(project=project, name="rpt_daily_sales", env="prod").first()
    wanted = [
        dict(
            name="Failures",
            scope={"kind": "project"},
            triggers=[{"type": "failure"}, {"type": "retries_exhausted"}],
            recipients={"owner": True, "on_call": on_call.name},
            dedup_minutes=30,
            mute_windows=[],
            escalate_after_minutes=30,
            escalate_to={"users": ["oscar"]},
        ),
        dict(
            name="Daily report late",
            scope={"kind": "nodes", "nodes": [report.pk]} if report else {"kind": "project"},
            triggers=[{"type": "unfinished_by", "time": "09:00"}],
            recipients={"owner": True},
            dedup_minutes=60,
            mute_windows=[],
        ),
    ]
    for values in wanted:
        errors = validate_rule(project, values)
        if errors:  # the demo's own data: a mistake here is a bug
            raise ValidationFailed("demo monitoring rule", errors)
        rule, _ = MonitorRule.objects.get_or_create(
            project=project, name=values["name"], defaults=values
        )
        rule.channels.add(channel)
    if report is not None:
        demo_baseline_setup(project, report=report, on_call=on_call.name, channel=channel)


def demo_baseline_setup(project: Project, *, report, on_call: str, channel) -> None:
    """The promise the demo's operators keep: the daily sales report by 09:00 (SPEC 7.3);
    the monitor predicts it every minute and lends it priority when it is at risk."""
    from apps.baselines.models import Baseline
    from apps.baselines.services import baseline_errors

    values = dict(
        name="Daily sales by 09:00",
        cycle="daily",
        committed_time="09:00",
        margin_minutes=60,
        priority=8,
        key_nodes=[report.pk],
        recipients={"owner": True, "users": [], "groups": [], "on_call": on_call},
        channels=[channel.pk],
        enabled=True,
    )
    if Baseline.objects.filter(project=project, name=values["name"]).exists():
        return
    errors = baseline_errors(project, values)
    if errors:  # the demo's own data: a mistake here is a bug
        raise ValidationFailed("demo baseline", errors)
    fields = {k: v for k, v in values.items() if k not in ("key_nodes", "channels")}
    baseline = Baseline.objects.create(project=project, **fields)
    baseline.key_nodes.set(values["key_nodes"])
    baseline.channels.set(values["channels"])


def demo_run(
    *,
    days: int = 3,
    log: Callable[[str], None] = lambda line: None,
) -> DemoResult:
    """Set up the demo project, publish its pipelines and make `days` days of history.

    History is made the way production makes it: the generator creates each day's
    instances, then the dispatcher and executors really run them (drain). Yesterday's
    and older instances are due at once; today's run up to the current hour; tomorrow's
    are generated and left pending.

    The latest past day is left with a failure to diagnose: the partner's returns file
    of that day arrives only after the day ran, so load_returns fails (a real error in
    its log), rpt_returns waits for it, and a rerun with downstream repairs it.
    """
    # Imported here: these modules import the whole scheduling core.
    from apps.instances.generation import generate
    from apps.instances.worker import drain
    from apps.nodes.services import nodes_publish

    if days < 0:
        raise ValidationFailed(
            "days must be 0 or more", errors=[{"field": "days", "message": "must be >= 0"}]
        )
    project = demo_project_setup()
    path = warehouse_path()
    warehouse_seed(path=path)
    scratch_dir().mkdir(parents=True, exist_ok=True)
    owner = get_user_model().objects.get(username=DEMO_USERS[0][0])

    published = nodes_publish(
        project=project,
        env="prod",
        specs=pipeline_specs(),
        user=owner,
        note="demo pipelines",
        source="cli",
    )
    log(
        f"published: {len(published.created)} created, {len(published.updated)} updated, "
        f"{len(published.unchanged)} unchanged"
    )

    now = clock.now()
    today = now.astimezone(project.tz).date()
    result = DemoResult(
        project=project,
        warehouse_path=path,
        published={
            "created": list(published.created),
            "updated": list(published.updated),
            "unchanged": list(published.unchanged),
        },
    )
    # Oldest first, so each day's history is finished before the next begins, as it
    # would have been in production.
    for offset in range(days, -1, -1):
        run_date = today - datetime.timedelta(days=offset)
        biz_date = run_date - datetime.timedelta(days=1)
        late_returns = offset == LATE_RETURNS_OFFSET
        if not late_returns:
            partner_returns_write(biz_date=biz_date)
        generated = generate(
            run_date=run_date, cutoff=clock.now(), projects=[project], trigger="demo"
        )
        result.instances_created += generated.instances_created
        result.days.append(run_date)
        log(f"{run_date}: generated {generated.instances_created} instances, running them")
        drain(timeout=TODAY_DRAIN_SECONDS if offset == 0 else PAST_DAY_DRAIN_SECONDS, log=log)
        if late_returns and not partner_returns_path(biz_date).exists():
            partner_returns_write(biz_date=biz_date)
            log(
                f"{run_date}: the partner's returns file of {biz_date} came late: "
                "load_returns failed and rpt_returns waits; rerun it with downstream"
            )
    tomorrow = today + datetime.timedelta(days=1)
    generated = generate(run_date=tomorrow, cutoff=clock.now(), projects=[project], trigger="demo")
    result.instances_created += generated.instances_created
    log(f"{tomorrow}: generated {generated.instances_created} instances (pending)")
    # The monitor reads what the history's runs recorded, as the cluster's schedule would.
    demo_monitoring_setup(project)
    from apps.monitoring.tasks import monitor_pass

    passed = monitor_pass()
    log(f"monitor: {passed['events']} state changes read, alerts raised from them")
    return result
