"""No page shows a time as a machine writes it: every main page and htmx partial, over the
demo's real history, is read as a person sees it (text, tooltips, labels) and must hold no
microseconds, no ISO 'T' between date and time and no bare UTC offset. Attributes meant
for scripts (datetime, data-*) may keep ISO 8601."""

import datetime
import re
import zoneinfo
from html.parser import HTMLParser
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from apps.accounts.services import profile_update
from apps.backfills.services import backfill_create
from apps.baselines.models import Baseline
from apps.instances.models import Attempt, Instance
from apps.monitoring.models import Alert
from apps.nodes.models import Node

RAW_TIME = [
    re.compile(r"\d{2}:\d{2}:\d{2}\.\d+"),  # microseconds
    re.compile(r"\dT\d{2}:\d{2}"),  # ISO's T between date and time
    re.compile(r"\d{2}:\d{2}(:\d{2})?[+-]\d{2}:\d{2}\b"),  # a bare offset: 02:00:13+08:00
]
# What a person reads of an element besides its text.
SHOWN_ATTRIBUTES = {"title", "aria-label", "alt", "placeholder"}
HIDDEN_INPUTS = {"hidden", "date", "datetime-local", "time"}


class ShownText(HTMLParser):
    """The text of a page as shown: text outside script and style, tooltips, labels and
    the values of visible text inputs."""

    def __init__(self, attributes: bool = True):
        super().__init__()
        self.attributes = attributes
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("script", "style"):
            self.skip += 1
        if not self.attributes:
            return
        for name in SHOWN_ATTRIBUTES & attributes.keys():
            self.parts.append(attributes[name] or "")
        if tag == "input" and attributes.get("type", "text") not in HIDDEN_INPUTS:
            self.parts.append(attributes.get("value") or "")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def shown_text(html: str, *, attributes: bool = True) -> str:
    parser = ShownText(attributes)
    parser.feed(html)
    return "\n".join(parser.parts)


def raw_times(text: str) -> list[str]:
    found = []
    for pattern in RAW_TIME:
        for match in pattern.finditer(text):
            found.append(text[max(match.start() - 40, 0) : match.end() + 20])
    return found


@pytest.fixture
def demo(settings, tmp_path, users):
    """The demo's history (one past day with its failure, alerts, baseline), a backfill of
    it and the demo's operator's profile saying Asia/Shanghai."""
    settings.VAR_DIR = tmp_path
    call_command("opscenter", "demo", "--days", "1", stdout=StringIO())
    failed = Instance.objects.get(node__name="load_returns", state="failed", kind="recurring")
    backfill_create(
        by=users["root"],
        source="ui",
        nodes=[Node.objects.get(name="rpt_daily_sales")],
        start=failed.biz_date - datetime.timedelta(days=1),
        end=failed.biz_date,
    )
    profile_update(user=oscar(), fields={"timezone": "Asia/Shanghai"})
    return failed


def oscar():
    """The demo's operator."""
    return get_user_model().objects.get(username="oscar")


def main_pages(failed: Instance) -> list[str]:
    waiting = Instance.objects.get(node__name="rpt_returns", biz_date=failed.biz_date)
    flaky = Attempt.objects.filter(instance__node__name="sync_partner_feed", number=2).first()
    node = failed.node
    alert = Alert.objects.filter(instance=failed).first()
    baseline = Baseline.objects.get()
    backfill = Instance.objects.filter(kind="backfill").first().backfill_id
    pages = [
        "/overview/",
        "/nodes/",
        f"/nodes/{node.pk}/",
        f"/nodes/{node.pk}/history/",
        "/instances/",
        f"/instances/?biz_date={failed.biz_date}",
        f"/instances/{failed.pk}/",
        f"/instances/{failed.pk}/log/view",
        f"/instances/{failed.pk}/dag/",
        f"/instances/{waiting.pk}/",
        f"/instances/{failed.pk}/live",
        f"/instances/{waiting.pk}/diagnosis",
        f"/instances/{failed.pk}/operations",
        f"/instances/{failed.pk}/neighbours",
        f"/instances/timeline/?biz_date={failed.biz_date}",
        "/backfills/",
        f"/backfills/{backfill}/",
        "/alerts/",
        f"/alerts/{alert.pk}/",
        "/baselines/",
        f"/baselines/{baseline.pk}/",
        "/health/",
        "/audit/",
        "/notifications/deliveries/",
        "/account/profile/",
    ]
    if flaky is not None:
        pages.append(f"/instances/{flaky.instance_id}/?attempt=2")
    return pages


@pytest.mark.django_db(transaction=True)
def test_no_page_shows_a_raw_iso_time(client, users, demo):
    pages = main_pages(demo)
    for username, user in [("root", users["root"]), ("oscar", oscar())]:
        client.force_login(user)
        for url in pages:
            response = client.get(url)
            assert response.status_code in (200, 286), (username, url, response.status_code)
            html = response.content.decode()
            assert raw_times(shown_text(html)) == [], (username, url)
            # The htmx partial of a page is what the page becomes on its next poll.
            partial = client.get(url, HTTP_HX_REQUEST="true")
            assert raw_times(shown_text(partial.content.decode())) == [], (username, url)
    # The graph's boxes are labelled by the server.
    graph = client.get(f"/instances/{demo.pk}/graph?up=3&down=3").json()
    labels = " ".join(f"{n['label']} {n.get('sublabel', '')}" for n in graph["nodes"])
    assert raw_times(labels) == []

    # The operator reads the failed instance's two dates in their own zone, each named.
    client.force_login(oscar())  # Asia/Shanghai
    html = client.get(f"/instances/{demo.pk}/").content.decode()
    text = " ".join(shown_text(html, attributes=False).split())
    scheduled = demo.scheduled_at.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai"))
    assert f"biz date {demo.biz_date:%Y-%m-%d} · scheduled {scheduled:%Y-%m-%d %H:%M} CST" in text


def test_the_crawler_sees_what_a_person_sees():
    html = (
        '<p title="at 2026-11-21T18:00:13">x</p><time datetime="2026-11-21T18:00:13+00:00">'
        "2026-11-21 18:00:13 UTC</time><script>var t = '2026-11-21T18:00:13.5Z';</script>"
        '<input type="hidden" value="2026-11-21T18:00"><span>12:00:01.25</span>'
        "<b>02:00:13+08:00</b>"
    )
    assert len(raw_times(shown_text(html))) == 3
