"""A backfill run finished with some skipped instances looks finished: its progress bar
is drawn in done colours from end to end, none of it in the colour of the empty track."""

import datetime

import pytest
from playwright.sync_api import expect

from apps.backfills import services
from apps.backfills.models import Backfill
from apps.instances.models import Instance
from tests.factories import node_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DRAWN = """bar => {
  const rgb = s => (s.match(/\\d+/g) || []).slice(0, 3).map(Number);
  const track = rgb(getComputedStyle(bar).backgroundColor);
  return {
    width: bar.clientWidth,
    segments: [...bar.querySelectorAll('.progress-seg')].map(seg => {
      const colour = rgb(getComputedStyle(seg).backgroundColor);
      return {
        state: seg.dataset.state,
        width: seg.getBoundingClientRect().width,
        // How far the segment's colour is from the empty track's (0..765).
        contrast: colour.reduce((sum, c, i) => sum + Math.abs(c - track[i]), 0),
      };
    }),
  };
}"""


def test_a_finished_run_with_skipped_instances_is_drawn_all_done(
    page, login, users, project, live_server, screenshots
):
    alice = users["alice"]
    extract = node_create(project, "extract", owner=alice)
    load = node_create(project, "load", owner=alice, upstream=[extract])
    backfill = services.backfill_create(
        by=users["olga"],
        source="ui",
        nodes=[extract],
        downstream=[load.id],
        start=datetime.date(2026, 11, 1),
        end=datetime.date(2026, 11, 10),
    )
    ids = list(
        Instance.objects.filter(backfill=backfill).order_by("id").values_list("id", flat=True)
    )
    Instance.objects.filter(pk__in=ids[:17]).update(state="succeeded")
    Instance.objects.filter(pk__in=ids[17:]).update(state="skipped")
    Backfill.objects.filter(pk=backfill.pk).update(state="succeeded")

    login("vera", f"/backfills/{backfill.id}/")
    summary = page.locator("#backfill-summary")
    expect(summary.locator("[data-percent]")).to_have_text("100%")
    page.screenshot(path=str(screenshots / "backfill-finished-bar.png"))
    drawn = summary.locator(".progress").evaluate(DRAWN)

    states = [s["state"] for s in drawn["segments"]]
    assert states == ["succeeded", "skipped"]
    assert sum(s["width"] for s in drawn["segments"]) == pytest.approx(drawn["width"], abs=1)
    for segment in drawn["segments"]:
        assert segment["contrast"] >= 100, f"{segment['state']} looks like the empty track"
