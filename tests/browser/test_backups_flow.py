"""A superuser opens a backup in a real browser, chooses Restore into…, reads the diff
with the changed node's script diff, confirms, and sees the restore's result."""

import pytest
from playwright.sync_api import expect

from apps.backups.services import backup_create
from apps.nodes.models import Node
from tests.backups.builders import acme_setup, shell
from tests.nodes.helpers import publish
from tests.resources.conftest import storage_dir  # noqa: F401 (autouse: a storage per test)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_restore_a_backup_after_viewing_its_diff(
    page, login, users, project, live_server, screenshots
):
    acme_setup(project, users)
    backup = backup_create(user=users["root"])
    # After the backup, someone breaks transform and adds a node.
    publish(
        project,
        users["alice"],
        shell("transform", "echo transform\necho broken\n", upstream=["extract"]),
        shell("scratch", "echo scratch\n"),
    )

    login("root", "/backups/")
    row = page.locator(f"tr[data-backup='{backup.pk}']")
    expect(row).to_contain_text(backup.sha256[:16])
    page.screenshot(path=str(screenshots / "backups-list.png"), full_page=True)
    row.locator("[data-action=restore]").click()
    page.wait_for_url(f"**/backups/{backup.pk}/restore/")
    page.select_option("#restore-target", "acme")
    page.click("[data-action=diff]")

    expect(page.locator("[data-restore=dry-run]")).to_contain_text("nothing has changed")
    nodes = page.locator("tr[data-kind=nodes]")
    expect(nodes.locator("[data-part=changed]")).to_contain_text("transform")
    expect(nodes.locator("[data-part=removed]")).to_contain_text("scratch")
    change = page.locator("[data-node=transform]")
    expect(change.locator(".diff-del")).to_contain_text("-echo broken")
    expect(change.locator(".diff-add")).to_contain_text("+echo step 2")
    page.screenshot(path=str(screenshots / "backup-restore-diff.png"), full_page=True)
    assert Node.objects.get(project=project, name="transform").version == 2

    page.click("[data-action=confirm-restore]")
    expect(page.locator("[data-restore=done]")).to_contain_text("Restored acme into acme")
    expect(page.locator("[data-restore=done]")).to_contain_text("1 changed node")
    transform = Node.objects.get(project=project, name="transform")
    assert transform.version == 3
    assert transform.current_version.spec["content"] == "echo transform\necho step 2\n"
    # Without "take nodes the backup lacks offline", scratch stays.
    assert Node.objects.get(project=project, name="scratch").status == "online"
    page.screenshot(path=str(screenshots / "backup-restored.png"), full_page=True)
