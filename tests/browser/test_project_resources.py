"""A developer uploads resources in a real browser: a file chosen in the file input, then
files dropped on the drop zone (a drop event carrying a DataTransfer, as a desktop drag
makes), a new version of one; the list shows them and a version downloads."""

import pytest
from playwright.sync_api import expect

from apps.resources.models import ResourceVersion

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Drops a file on the zone the way the browser does for a file dragged from the desktop.
DROP = """([name, text]) => {
    const zone = document.querySelector("[data-drop-zone]");
    const data = new DataTransfer();
    data.items.add(new File([text], name, {type: "text/plain"}));
    for (const kind of ["dragenter", "dragover"]) {
        zone.dispatchEvent(new DragEvent(kind, {bubbles: true, cancelable: true, dataTransfer: data}));
    }
    const dragging = zone.classList.contains("dragging");
    zone.dispatchEvent(new DragEvent("drop", {bubbles: true, cancelable: true, dataTransfer: data}));
    return dragging;
}"""


@pytest.fixture(autouse=True)
def storage(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "storage")},
        },
    }


def test_upload_by_file_input_and_by_drop_then_download(
    page, login, project, live_server, screenshots, tmp_path
):
    base = f"{live_server.url}/projects/acme/resources/"
    login("dave", "/projects/acme/")
    page.click("nav.tabs >> text=Resources")
    page.wait_for_url(base)
    expect(page.locator("#resource-table")).to_contain_text("No resources yet.")

    # Chosen in the file input; the resource takes the file's name.
    page.set_input_files(
        "#r-file", files=[{"name": "lookup.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"}]
    )
    expect(page.locator("[data-drop-hint]")).to_contain_text(
        "Ready to upload: lookup.csv (8 bytes)"
    )
    page.click("#resource-upload [data-action=upload]")
    page.wait_for_url(base)
    expect(page.locator("tr[data-resource='lookup.csv']")).to_contain_text("v1")
    expect(page.locator(".messages")).to_contain_text("Uploaded lookup.csv as version 1.")

    # Dropped on the zone.
    assert page.evaluate(DROP, ["transform.py", "print('v1')\n"]) is True
    expect(page.locator("[data-drop-zone]")).to_have_class("drop-zone has-file")
    expect(page.locator("[data-drop-hint]")).to_contain_text("Ready to upload: transform.py")
    page.click("#resource-upload [data-action=upload]")
    page.wait_for_url(base)
    expect(page.locator("tr[data-resource='transform.py']")).to_contain_text("v1")

    # A new version of lookup.csv, dropped under another file name and named in the form.
    page.evaluate(DROP, ["lookup-new.csv", "a,b\n3,4\n5,6\n"])
    page.fill("#r-name", "lookup.csv")
    page.click("#resource-upload [data-action=upload]")
    page.wait_for_url(base)
    row = page.locator("tr[data-resource='lookup.csv']")
    expect(row).to_contain_text("v2")
    expect(row.locator("td").nth(5)).to_have_text("2")
    page.screenshot(path=str(screenshots / "project-resources.png"), full_page=True)
    assert sorted(
        ResourceVersion.objects.values_list("resource__name", "number", "size_bytes")
    ) == [("lookup.csv", 1, 8), ("lookup.csv", 2, 12), ("transform.py", 1, 12)]

    # A bad name is refused next to its input.
    page.evaluate(DROP, ["x.txt", "x"])
    page.fill("#r-name", "../x")
    page.click("#resource-upload [data-action=upload]")
    expect(page.locator("[data-field=name] .field-error")).to_contain_text("a file name")

    # The versions, and the first one downloaded.
    page.goto(base)
    page.click("tr[data-resource='lookup.csv'] >> text=lookup.csv")
    expect(page.locator("tr[data-version]")).to_have_count(2)
    with page.expect_download() as caught:
        page.click("tr[data-version='1'] [data-action=download]")
    download = caught.value
    assert download.suggested_filename == "lookup.csv"
    saved = tmp_path / "downloaded.csv"
    download.save_as(saved)
    assert saved.read_bytes() == b"a,b\n1,2\n"
