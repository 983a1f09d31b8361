"""How a moment is written for a person: apps.core.times and the `when` filters."""

import datetime
import zoneinfo

import pytest
from django.template import Context, Template
from django.utils import timezone

from apps.core import times

# 02:00:13.456789 on 2026-11-22 in Asia/Shanghai.
MOMENT = datetime.datetime(2026, 11, 21, 18, 0, 13, 456789, tzinfo=datetime.UTC)
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture
def shanghai():
    timezone.activate(SHANGHAI)
    yield
    timezone.deactivate()


@pytest.mark.parametrize(
    "shape, text",
    [
        ("full", "2026-11-22 02:00:13 CST"),
        ("minute", "2026-11-22 02:00 CST"),
        ("short", "11-22 02:00:13"),
        ("short_minute", "11-22 02:00"),
        ("time", "02:00:13"),
        ("time_zone", "02:00 CST"),
        ("date", "2026-11-22"),
    ],
)
def test_shapes_in_the_active_zone_never_show_microseconds(shanghai, shape, text):
    assert times.format_when(MOMENT, shape) == text


def test_a_zone_given_wins_over_the_active_one(shanghai):
    assert times.format_when(MOMENT, tz="Europe/Berlin") == "2026-11-21 19:00:13 CET"
    assert times.format_when(MOMENT, tz=datetime.UTC) == "2026-11-21 18:00:13 UTC"


def test_iso_strings_dates_and_nothing(shanghai):
    # What JSON details keep (diagnosis, alert details) is written like any moment.
    assert times.format_when("2026-11-21T18:00:13.456789+00:00") == "2026-11-22 02:00:13 CST"
    assert times.format_when("2026-11-21") == "2026-11-21"
    assert times.format_when(datetime.date(2026, 11, 21)) == "2026-11-21"
    assert times.format_when(None) == times.format_when("") == times.format_when("soon") == ""


def test_summer_and_winter_abbreviations():
    berlin = "Europe/Berlin"
    assert times.format_when(MOMENT, tz=berlin).endswith(" CET")
    summer = MOMENT.replace(month=7)
    assert times.format_when(summer, tz=berlin) == "2026-07-21 20:00:13 CEST"
    assert times.zone_label(berlin, at=summer) == "CEST (Europe/Berlin)"
    assert times.zone_label("UTC") == "UTC"


@pytest.mark.parametrize(
    "seconds, text",
    [
        (2, "just now"),
        (42, "42 s ago"),
        (5 * 60 + 10, "5 min ago"),
        (3 * 3600 + 10 * 60, "3 h 10 min ago"),
        (12 * 3600 + 10 * 60, "12 h ago"),
        (3 * 86400 + 5, "3 d ago"),
        (-90, "in 1 min"),
    ],
)
def test_ages(seconds, text):
    now = MOMENT + datetime.timedelta(seconds=seconds)
    assert times.format_age(MOMENT, now=now) == text


def render(source: str, **context) -> str:
    return Template("{% load opscenter %}" + source).render(Context(context))


def test_when_filter_is_a_time_element_naming_the_zone(shanghai):
    html = render("{{ t|when }}", t=MOMENT)
    assert html == (
        '<time datetime="2026-11-22T02:00:13+08:00" title="2026-11-22 02:00:13 CST '
        '(Asia/Shanghai)">2026-11-22 02:00:13 CST</time>'
    )
    short = render('{{ t|when:"short" }}', t=MOMENT)
    assert ">11-22 02:00:13</time>" in short and 'title="2026-11-22 02:00:13 CST' in short
    assert render('{{ t|when_text:"minute" }}', t=MOMENT) == "2026-11-22 02:00 CST"
    assert render('{{ t|when|default:"—" }}', t=None) == "—"


def test_when_ago_keeps_the_moment_in_its_tooltip(shanghai, time_machine):
    time_machine.move_to(MOMENT + datetime.timedelta(minutes=5, seconds=3), tick=False)
    html = render('{{ t|when:"ago" }}', t=MOMENT)
    assert ">5 min ago</time>" in html and 'title="2026-11-22 02:00:13 CST' in html
