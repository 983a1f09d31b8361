import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.configuration.models import ResourceGroup
from apps.instances.models import Attempt, Instance
from tests.factories import instance_create, node_create
from tests.pages.builders import log_append

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def minutes_ago(minutes: float) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(minutes=minutes)


@pytest.fixture
def pipeline(users, project):
    """A small day of work in every state, like an operator's morning."""
    alice, olga = users["alice"], users["olga"]
    ResourceGroup.objects.get_or_create(name="etl-heavy")
    today = timezone.now().replace(second=0, microsecond=0) - datetime.timedelta(hours=3)
    nodes = {
        name: node_create(project, name, owner=owner, type=kind, resource_group=group)
        for name, owner, kind, group in [
            ("ingest_orders", alice, "shell", "default"),
            ("stg_orders", alice, "sql", "default"),
            ("dim_customers", olga, "sql", "etl-heavy"),
            ("fact_sales", olga, "sql", "etl-heavy"),
            ("daily_report", alice, "python", "default"),
            ("weekly_summary", alice, "sql", "default"),
        ]
    }
    made = {}
    made["ingest"] = instance_create(
        nodes["ingest_orders"],
        today,
        state="succeeded",
        attempt_count=1,
        started_at=minutes_ago(170),
        finished_at=minutes_ago(168),
    )
    made["stg"] = instance_create(
        nodes["stg_orders"],
        today,
        upstream=[made["ingest"]],
        state="failed",
        attempt_count=3,
        started_at=minutes_ago(160),
        finished_at=minutes_ago(150),
        priority=4,
    )
    made["dim"] = instance_create(
        nodes["dim_customers"],
        today,
        upstream=[made["ingest"]],
        state="running",
        attempt_count=1,
        started_at=minutes_ago(2),
    )
    made["fact"] = instance_create(
        nodes["fact_sales"],
        today,
        upstream=[made["stg"], made["dim"]],
        state="pending",
        wait_reason="waiting_upstream",
    )
    made["report"] = instance_create(
        nodes["daily_report"],
        today + datetime.timedelta(hours=6),
        upstream=[made["fact"]],
        state="pending",
        wait_reason="waiting_time",
    )
    made["weekly"] = instance_create(nodes["weekly_summary"], today, state="skipped", dry_run=True)
    for number, state, reason in [
        (1, "failed", "exit code 1"),
        (2, "failed", "timed out after 600s"),
        (3, "failed", "exit code 1"),
    ]:
        Attempt.objects.create(
            instance=made["stg"],
            number=number,
            state=state,
            reason=reason,
            exit_code=1,
            started_at=minutes_ago(170 - number * 5),
            finished_at=minutes_ago(168 - number * 5),
            cpu_seconds=0.4 * number,
            peak_memory_mb=31.5,
        )
    return made


def test_log_in_filter_by_state_and_open_an_instance(
    page, login, pipeline, live_server, screenshots
):
    page.goto(f"{live_server.url}/instances/")
    expect(page.locator(".login-card")).to_be_visible()
    page.screenshot(path=str(screenshots / "login.png"))
    login("olga")
    expect(page.locator("h1")).to_contain_text("Instances")
    expect(page.locator("#instance-table tbody tr")).to_have_count(6)
    expect(page.locator("#instance-table")).to_contain_text("Waiting for upstream")
    page.screenshot(path=str(screenshots / "instances-list.png"), full_page=True)

    page.evaluate("window.notReloaded = true")
    page.select_option("#f-state", "failed")
    expect(page.locator("#instance-table tbody tr")).to_have_count(1)
    expect(page.locator("#instance-table tbody")).to_contain_text("stg_orders")
    assert "state=failed" in page.url and "biz_date=" not in page.url
    assert page.evaluate("window.notReloaded") is True  # htmx swapped only the table

    page.click("#instance-table tbody a:text('stg_orders')")
    page.wait_for_url(f"{live_server.url}/instances/{pipeline['stg'].id}/")
    expect(page.locator("h1")).to_contain_text("stg_orders")
    expect(page.locator("#instance-live .status-line")).to_contain_text("Failed")
    expect(page.locator("table.attempts tbody tr")).to_have_count(3)
    expect(page.locator("#upstream")).to_contain_text("ingest_orders")
    expect(page.locator("#downstream")).to_contain_text("fact_sales")
    page.screenshot(path=str(screenshots / "instance-detail-failed.png"), full_page=True)


def test_bad_filter_shows_a_message_naming_the_field(page, login, pipeline, live_server):
    login("olga")
    page.goto(f"{live_server.url}/instances/?biz_date=yesterday")
    expect(page.locator(".alert-error")).to_contain_text("biz_date")


def test_list_refreshes_itself_while_an_instance_runs(page, login, pipeline):
    login("olga")
    row = page.locator(f"tr[data-instance='{pipeline['dim'].id}']")
    expect(row).to_contain_text("Running")
    polls = []
    page.on("response", lambda r: polls.append(r.status) if "/instances/" in r.url else None)
    Instance.objects.filter(pk=pipeline["dim"].pk).update(
        state="succeeded", finished_at=timezone.now()
    )
    expect(row).to_contain_text("Succeeded", timeout=15_000)
    # The answer that showed nothing running any more told htmx to stop (286).
    expect(page.locator("#instance-table")).not_to_have_attribute("hx-trigger", "every 5s")
    assert 286 in polls


def test_log_follows_a_running_attempt_and_stops_when_it_finishes(
    page, login, users, project, live_server, screenshots
):
    node = node_create(project, "load_orders", owner=users["alice"], type="shell")
    started = minutes_ago(1)
    instance = instance_create(node, started, state="running", attempt_count=1, started_at=started)
    attempt = Attempt.objects.create(
        instance=instance, number=1, state="running", started_at=started
    )
    log_append(attempt, "+ psql -f load_orders.sql\n", "COPY 1200\n")

    login("olga", f"/instances/{instance.id}/")
    log = page.locator("#log-text")
    expect(log).to_have_text("+ psql -f load_orders.sql\nCOPY 1200\n")
    page.evaluate("window.notReloaded = true")

    log_append(attempt, "INSERT 0 350 <rows>\n")
    expect(log).to_have_text("+ psql -f load_orders.sql\nCOPY 1200\nINSERT 0 350 <rows>\n")
    log_append(attempt, "ANALYZE\n")
    expect(log).to_contain_text("ANALYZE\n")
    page.screenshot(path=str(screenshots / "instance-detail.png"), full_page=True)

    requests = []
    page.on(
        "request",
        lambda r: requests.append(r.url) if f"/instances/{instance.id}/" in r.url else None,
    )
    finished = timezone.now()
    log_append(attempt, "done\n")
    Attempt.objects.filter(pk=attempt.pk).update(
        state="succeeded", finished_at=finished, exit_code=0, cpu_seconds=0.8, peak_memory_mb=55.0
    )
    Instance.objects.filter(pk=instance.pk).update(state="succeeded", finished_at=finished)

    expect(log).to_have_text(
        "+ psql -f load_orders.sql\nCOPY 1200\nINSERT 0 350 <rows>\nANALYZE\ndone\n"
    )
    expect(page.locator("#log-poller")).to_contain_text("End of log")
    expect(page.locator("#instance-live .status-line")).to_contain_text("Succeeded")
    expect(page.locator("table.attempts tbody tr")).to_contain_text("0.80")
    assert page.evaluate("window.notReloaded") is True

    # Both pollers got their 286; nothing may ask again. Absence has no event to await,
    # so watch for three of the log's polling intervals.
    asked = len(requests)
    page.wait_for_timeout(3000)
    assert len(requests) == asked
    expect(page.locator("#log-poller")).not_to_have_attribute("hx-trigger", "every 1s")


def test_a_retry_switches_the_followed_log_to_the_new_attempt(page, login, users, project):
    node = node_create(project, "flaky", owner=users["alice"], type="python")
    started = minutes_ago(1)
    instance = instance_create(node, started, state="running", attempt_count=1, started_at=started)
    first = Attempt.objects.create(instance=instance, number=1, state="running", started_at=started)
    log_append(first, "try one\n")
    login("olga", f"/instances/{instance.id}/")
    expect(page.locator("#log-text")).to_have_text("try one\n")

    # The worker fails attempt 1, the dispatcher starts attempt 2.
    Attempt.objects.filter(pk=first.pk).update(
        state="failed", finished_at=timezone.now(), exit_code=1
    )
    second = Attempt.objects.create(
        instance=instance, number=2, state="running", started_at=timezone.now()
    )
    Instance.objects.filter(pk=instance.pk).update(attempt_count=2)
    log_append(second, "try two\n")
    expect(page.locator("#log-panel h2")).to_contain_text("attempt 2")
    expect(page.locator("#log-text")).to_have_text("try two\n")
    log_append(second, "still going\n")
    expect(page.locator("#log-text")).to_have_text("try two\nstill going\n")


def test_switch_project_and_log_out_from_the_user_menu(
    page, login, pipeline, live_server, screenshots
):
    from apps.projects.models import Membership, Project

    beta = Project.objects.create(code="beta", name="Beta Lake", timezone="UTC")
    Membership.objects.create(project=beta, user=pipeline["ingest"].node.owner, role="viewer")
    login("alice")
    page.select_option("#project-select", "beta")
    page.wait_for_url(f"{live_server.url}/instances/?project=beta")
    expect(page.locator("h1")).to_contain_text("Beta Lake")
    expect(page.locator("#instance-table tbody tr.empty")).to_have_count(1)
    page.select_option("#project-select", "")
    expect(page.locator("#instance-table tbody tr")).to_have_count(6)

    page.click(".usermenu summary")
    expect(page.locator(".usermenu-body")).to_be_visible()
    page.screenshot(path=str(screenshots / "user-menu.png"))
    page.click(".usermenu-body button:text('Log out')")
    expect(page.locator(".login-card")).to_be_visible()
    page.goto(f"{live_server.url}/instances/")
    assert "/login/" in page.url
