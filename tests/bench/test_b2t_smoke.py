"""B2t runs at scale "tiny" against the test database on real clusters, so its code
cannot rot. Speed is not asserted here: the figures are for `make bench`."""

import pytest

from bench import b2t_throttled


@pytest.mark.django_db(transaction=True)
def test_b2t_runs_with_and_without_rules_and_every_instance_runs_once(users):
    from django_q.models import Schedule

    from apps.configuration.models import ThrottleRule
    from apps.instances.models import Attempt, Instance

    Schedule.objects.all().delete()
    [row] = b2t_throttled.run("tiny")
    assert row["id"] == "B2t" and row["value"] > 0 and row["baseline"] > 0
    assert isinstance(row["met"], bool)
    assert "20 rules in force" in row["note"] and "9 cover the run's instances" in row["note"]
    codes = [f"b2{kind}{n}" for n in range(b2t_throttled.ROUNDS) for kind in "pt"]
    runs = Instance.objects.filter(project__code__in=codes)
    assert runs.count() == len(codes) * 200
    assert runs.exclude(state="succeeded").count() == 0
    assert Attempt.objects.filter(instance__in=runs).count() == runs.count()
    assert not ThrottleRule.objects.exists()
