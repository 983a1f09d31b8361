"""A project admin creates a throttling rule from its page in a real browser, then
watches the instances it covers wait `throttled` and run one at a time while real
workers (worker.drain in a thread) run them."""

import datetime

import pytest
from playwright.sync_api import expect

from apps.configuration.models import ThrottleRule
from apps.instances import dispatcher
from apps.instances.models import Attempt, Instance
from tests.browser.test_operations_flow import Drain
from tests.factories import instance_create, node_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


def test_create_a_rule_and_watch_instances_wait_throttled_then_run(
    page, login, users, project, live_server, screenshots
):
    alice = users["alice"]
    made = [
        instance_create(
            node_create(project, f"export_{n}", owner=alice, type="shell", content="sleep 2"),
            SCHEDULED,
            priority=priority,
        )
        for n, priority in enumerate((5, 3, 1))
    ]
    last = made[-1]

    login("alice", "/configuration/throttle-rules/")
    page.click("[data-action=new-rule]")
    page.wait_for_url("**/configuration/throttle-rules/new/")
    page.fill("#rule-name", "exports-one-at-a-time")
    page.select_option("#rule-scope-kind", "project")
    page.fill("#rule-scope-value", "acme")
    page.fill("#rule-max", "0")
    page.click("#rule-form [data-action=save]")
    # Refused in place, naming the field; nothing made.
    expect(page.locator("[data-field=max_concurrency] .field-error")).to_contain_text(
        "a whole number from 1"
    )
    assert not ThrottleRule.objects.exists()
    page.fill("#rule-max", "1")
    page.click("#rule-form [data-action=save]")
    page.wait_for_url(f"{live_server.url}/configuration/throttle-rules/")
    rule = ThrottleRule.objects.get()
    row = page.locator(f"tr[data-rule='{rule.pk}']")
    expect(row.locator("[data-in-force]")).to_have_attribute("data-in-force", "true")
    page.screenshot(path=str(screenshots / "throttle-rule-created.png"), full_page=True)

    # One pass: the first starts, the others wait throttled (the list polls its usage).
    dispatcher.tick(enqueue=lambda group, ids: None)
    assert Instance.objects.get(pk=last.pk).wait_reason == "throttled"
    expect(row).to_have_attribute("data-in-use", "1", timeout=15_000)
    expect(row).to_have_attribute("data-throttled", "2")

    # The last one's page says why, naming the rule, and then follows it to its end.
    page.goto(f"{live_server.url}/instances/{last.pk}/")
    blocker = page.locator("#instance-diagnosis [data-blocker='throttled']")
    expect(blocker).to_contain_text("exports-one-at-a-time")
    expect(blocker.locator(f"a[data-rule='{rule.pk}']")).to_be_visible()
    page.screenshot(path=str(screenshots / "throttled-instance.png"), full_page=True)

    # The group's page: the holder, and the queue in start order.
    page.goto(f"{live_server.url}/configuration/resource-groups/default/")
    expect(page.locator(f"#group-holders tr[data-instance='{made[0].pk}']")).to_be_visible()
    queue = page.locator("#group-queue tbody tr[data-position]")
    expect(queue).to_have_count(2)
    expect(queue.nth(1)).to_have_attribute("data-instance", str(last.pk))
    page.screenshot(path=str(screenshots / "resource-group.png"), full_page=True)
    page.goto(f"{live_server.url}/instances/{last.pk}/")

    drain = Drain(timeout=5)
    expect(page.locator("#instance-live .status-line")).to_contain_text("Succeeded", timeout=60_000)
    drain.join()
    page.screenshot(path=str(screenshots / "throttled-instance-done.png"), full_page=True)

    attempts = sorted(Attempt.objects.filter(instance__in=made), key=lambda a: a.started_at)
    assert [a.instance_id for a in attempts] == [i.pk for i in made]  # priority order
    for earlier, later in zip(attempts, attempts[1:], strict=False):
        assert earlier.finished_at <= later.started_at
    page.goto(f"{live_server.url}/configuration/throttle-rules/")
    expect(page.locator(f"tr[data-rule='{rule.pk}']")).to_have_attribute("data-in-use", "0")
