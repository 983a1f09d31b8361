"""An operator's morning, in a real browser: find the failed instance from the overview,
read why its child waits, rerun it with downstream and watch the chain turn green
without reloading; then a batch set-success from the instance list."""

import datetime
import threading

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from apps.audit.models import OperationLog
from apps.instances import worker
from apps.instances.models import Attempt, Instance
from tests.factories import instance_create, node_create
from tests.pages.builders import log_append

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def today_midnight(project) -> datetime.datetime:
    """00:00 today in the project's timezone: due now, and "today" on the overview."""
    local = timezone.now().astimezone(project.tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def broken_chain(users, project):
    """extract (succeeded) -> load_orders (failed) -> report (waits) -> publish (waits)."""
    alice = users["alice"]
    at = today_midnight(project)
    extract = node_create(project, "extract", owner=alice, type="shell", content="echo extracted")
    load = node_create(
        project,
        "load_orders",
        owner=alice,
        type="shell",
        upstream=[extract],
        content="echo loading ${bizdate}\necho COPY 1200",
    )
    report = node_create(
        project, "report", owner=alice, type="python", upstream=[load], content="print('report')"
    )
    publish = node_create(project, "publish", owner=alice, type="virtual", upstream=[report])
    made = {"extract": instance_create(extract, at, state="succeeded", attempt_count=1)}
    made["load"] = instance_create(
        load,
        at,
        upstream=[made["extract"]],
        state="failed",
        attempt_count=1,
        started_at=at,
        finished_at=at + datetime.timedelta(seconds=4),
    )
    failed = Attempt.objects.create(
        instance=made["load"],
        number=1,
        state="failed",
        reason="exit code 1",
        exit_code=1,
        started_at=at,
        finished_at=at + datetime.timedelta(seconds=4),
    )
    log_append(failed, "loading\n", "ERROR: relation orders_raw does not exist\n")
    made["report"] = instance_create(
        report, at, upstream=[made["load"]], state="pending", wait_reason="waiting_upstream"
    )
    made["publish"] = instance_create(
        publish, at, upstream=[made["report"]], state="pending", wait_reason="waiting_upstream"
    )
    return made


class Drain:
    """The dispatcher and workers in a thread of the test (worker.drain), as a cluster
    would run them, so the pages see real state changes."""

    def __init__(self, timeout: float = 30):
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(timeout,), daemon=True)
        self.thread.start()

    def _run(self, timeout: float) -> None:
        try:
            worker.drain(timeout=timeout)
        except BaseException as exc:  # surfaced by join()
            self.error = exc
        finally:
            connection.close()

    def join(self) -> None:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "drain did not end"
        if self.error:
            raise self.error


def test_find_a_failure_read_why_the_child_waits_and_rerun_with_downstream(
    page, login, broken_chain, live_server, screenshots
):
    load, report, publish = broken_chain["load"], broken_chain["report"], broken_chain["publish"]
    page.on("dialog", lambda dialog: dialog.accept())

    # The overview counts today's failure; its number leads to the failed instance.
    login("olga", "/overview/")
    failed_tile = page.locator("a[data-state-total='failed']")
    expect(failed_tile).to_contain_text("1")
    failed_tile.click()
    page.wait_for_url("**/instances/?*state=failed*")
    expect(page.locator("#instance-table tbody tr")).to_have_count(1)
    page.click("#instance-table tbody a:text('load_orders')")
    page.wait_for_url(f"{live_server.url}/instances/{load.id}/")
    expect(page.locator("#instance-live .status-line")).to_contain_text("Failed")
    expect(page.locator("#log-text")).to_contain_text("orders_raw does not exist")
    expect(page.locator("#instance-actions [data-action='rerun_downstream']")).to_be_visible()
    expect(page.locator("#instance-actions [data-action='stop']")).to_have_count(0)

    # Its waiting child says why it waits: the failed instance is the root cause.
    page.click("#downstream a:text('report')")
    page.wait_for_url(f"{live_server.url}/instances/{report.id}/")
    diagnosis = page.locator("#instance-diagnosis")
    expect(diagnosis).to_contain_text("Why is it not running?")
    expect(diagnosis.locator("[data-blocker='waiting_upstream']")).to_contain_text(
        "Waiting for upstream"
    )
    root = diagnosis.locator(f".root-cause[data-instance='{load.id}']")
    expect(root).to_contain_text("load_orders")
    expect(root).to_contain_text("failed")
    expect(root.locator("[data-action='rerun']")).to_be_visible()
    expect(page.locator(".dag[data-dag-state='ready']")).to_be_visible()
    page.screenshot(path=str(screenshots / "instance-waiting-diagnosis.png"), full_page=True)

    # From the root cause to the failed instance; rerun it with its downstream.
    root.locator("a:text('load_orders')").click()
    page.wait_for_url(f"{live_server.url}/instances/{load.id}/")
    page.screenshot(path=str(screenshots / "instance-failed.png"), full_page=True)
    page.click("#instance-actions [data-action='rerun_downstream']")
    page.wait_for_url(f"{live_server.url}/instances/{load.id}/")
    expect(page.locator(".messages")).to_contain_text("will run again")
    entry = OperationLog.objects.get(action="rerun", object_id=str(load.id))
    assert entry.result == "ok" and entry.source == "ui" and entry.detail["downstream"] is True

    # The workers take it from here; the page follows without a reload.
    page.evaluate("window.notReloaded = true")
    drain = Drain()
    expect(page.locator("#instance-live .status-line")).to_contain_text("Succeeded", timeout=45_000)
    expect(page.locator(f"#downstream li[data-instance='{report.id}']")).to_contain_text(
        "Succeeded", timeout=45_000
    )
    expect(page.locator("#log-text")).to_contain_text("COPY 1200")
    expect(page.locator("table.attempts tbody tr")).to_have_count(2)
    # The graph repaints in place too, once its last poll sees everything done.
    graph = page.locator(".dag")
    expect(graph.locator(f"[data-dag-list] li[data-id='{report.id}']")).to_contain_text(
        "Succeeded", timeout=45_000
    )
    expect(graph.locator(f"[data-dag-list] li[data-id='{publish.id}']")).to_contain_text(
        "Succeeded", timeout=45_000
    )
    # The buttons follow the state: a finished instance can be rerun, not stopped.
    expect(page.locator("#instance-actions [data-action='rerun']")).to_be_visible()
    expect(page.locator("#instance-actions [data-action='stop']")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(screenshots / "instance-rerun-succeeded.png"), full_page=True)
    drain.join()
    assert Instance.objects.get(pk=publish.pk).state == "succeeded"


def test_batch_set_success_from_the_instance_list(
    page, login, users, project, live_server, screenshots
):
    at = today_midnight(project)
    alice = users["alice"]
    failed = instance_create(
        node_create(project, "load_orders", owner=alice), at, state="failed", attempt_count=1
    )
    stopped = instance_create(
        node_create(project, "load_items", owner=alice), at, state="stopped", attempt_count=1
    )
    done = instance_create(
        node_create(project, "ingest", owner=alice), at, state="succeeded", attempt_count=1
    )
    later = instance_create(
        node_create(project, "report", owner=alice),
        at + datetime.timedelta(minutes=5),
        state="pending",
        wait_reason="waiting_upstream",
    )
    page.on("dialog", lambda dialog: dialog.accept())
    login("olga")
    for instance in (failed, stopped, done):
        page.check(f"tr[data-instance='{instance.id}'] input[name=ids]")
    expect(page.locator("[data-batch-count]")).to_have_text("3 instances selected")
    page.select_option("#batch-action", "set_success")
    page.screenshot(path=str(screenshots / "instances-batch-selected.png"), full_page=True)
    page.click("[data-batch-submit]")

    # The confirmation names what will change and what would be refused, and why.
    page.wait_for_url(f"{live_server.url}/instances/batch/")
    expect(page.locator("h1")).to_contain_text("Set success 2 instances?")
    change = page.locator("table.batch-change tbody tr")
    expect(change).to_have_count(2)
    refused = page.locator(f"table.batch-refused tr[data-instance='{done.id}']")
    expect(refused).to_contain_text("has succeeded")
    page.screenshot(path=str(screenshots / "instances-batch-confirm.png"), full_page=True)
    assert Instance.objects.get(pk=failed.pk).state == "failed"  # nothing changed yet

    page.click("button:text('Set success 2 instances')")
    expect(page.locator("h1")).to_contain_text("Set success: 2 of 2 instances changed")
    for instance in (failed, stopped):
        row = page.locator(f"table.batch-results tr[data-instance='{instance.id}']")
        expect(row).to_have_attribute("data-ok", "true")
        expect(row).to_contain_text("Succeeded")
    page.screenshot(path=str(screenshots / "instances-batch-result.png"), full_page=True)

    # Back on the list, as it was, with the new states.
    page.click("a:text('Back to the list')")
    page.wait_for_url(f"{live_server.url}/instances/")
    expect(page.locator(f"tr[data-instance='{failed.id}']")).to_contain_text("forced")
    expect(page.locator(f"tr[data-instance='{stopped.id}']")).to_contain_text("Succeeded")
    expect(page.locator(f"tr[data-instance='{later.id}']")).to_contain_text("Pending")
    assert OperationLog.objects.filter(action="set_success", result="ok").count() == 2


def test_the_full_screen_graph_of_two_hundred_instances(
    page, login, users, project, live_server, screenshots
):
    """A wide and deep graph stays readable: it opens on its focus at a readable zoom, the
    depth controls ask for more levels, and every box is a link."""
    from tests.pages.test_instance_graph import wide_graph

    focus, made = wide_graph(project, users["alice"])
    login("olga", f"/instances/{focus.id}/dag/?up=3&down=3")
    graph = page.locator(".dag")
    expect(graph).to_have_attribute("data-dag-state", "ready", timeout=30_000)
    count = page.evaluate("document.querySelector('.dag').dag.cy.nodes().length")
    assert count == len(made)
    zoom = page.evaluate("document.querySelector('.dag').dag.cy.zoom()")
    assert zoom >= 0.6  # labels readable, not a fit of 200 boxes into a postage stamp
    page.screenshot(path=str(screenshots / "dag-200.png"))

    page.click("[data-dag-fit]")
    page.screenshot(path=str(screenshots / "dag-200-fit.png"))

    page.click("[data-dag-step='down'][data-delta='-1']")
    expect(graph.locator("[data-dag-value='down']")).to_have_text("2")
    expect(graph).to_have_attribute("data-dag-state", "ready", timeout=30_000)
    assert "down=2" in page.url
    smaller = page.evaluate("document.querySelector('.dag').dag.cy.nodes().length")
    assert smaller < count

    # A box is a link to its instance.
    other = page.evaluate("document.querySelector('.dag').dag.cy.nodes(':not(.focus)')[0].id()")
    page.evaluate(
        "id => document.querySelector('.dag').dag.cy.getElementById(id).emit('tap')", other
    )
    page.wait_for_url(f"{live_server.url}/instances/{other}/")
