import datetime

import pytest
import time_machine

from apps.core.templatetags.opscenter import duration, elapsed, state_badge
from apps.instances.choices import AttemptState, InstanceState, WaitReason


@pytest.mark.parametrize(
    "value, kind, choices",
    [
        ("running", "state", InstanceState),
        ("failed", "attempt", AttemptState),
        ("frozen", "wait", WaitReason),
    ],
)
def test_state_badge_takes_label_and_colour_from_the_choices(value, kind, choices):
    member = choices(value)
    assert state_badge(value, kind) == (
        f'<span class="badge badge-{member.color}" data-{kind}="{value}">{member.label}</span>'
    )


def test_state_badge_of_nothing_or_unknown():
    assert state_badge("") == ""
    assert state_badge("<odd>") == '<span class="badge badge-gray">&lt;odd&gt;</span>'


def test_every_state_colour_has_a_css_class():
    from django.conf import settings

    css = (settings.BASE_DIR / "static" / "css" / "opscenter.css").read_text()
    for choices in (InstanceState, AttemptState, WaitReason):
        for color in choices.colors().values():
            assert f".badge-{color} " in css, color


@pytest.mark.parametrize(
    "seconds, text",
    [(None, ""), (0, "0.0s"), (4.25, "4.2s"), (59.9, "59.9s"), (65, "1m 05s"), (7260, "2h 01m")],
)
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_elapsed_counts_to_now_while_running_and_to_the_end_once_finished():
    class Run:
        started_at = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)
        finished_at = None

    with time_machine.travel(
        datetime.datetime(2026, 11, 21, 10, 2, tzinfo=datetime.UTC), tick=False
    ):
        assert elapsed(Run) == 120
    Run.finished_at = Run.started_at + datetime.timedelta(seconds=30)
    assert elapsed(Run) == 30
    Run.started_at = None
    assert elapsed(Run) is None
