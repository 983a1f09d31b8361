"""The Quality pages (rule list, a rule's page with its results, the create and edit
forms, delete), the field rule panels of the node and instance pages, the admin."""

import datetime
import re

import pytest
from django.test import Client

from apps.audit.models import OperationLog
from apps.projects.models import Datasource
from apps.quality.models import FieldRule, FieldRuleResult
from tests.factories import instance_create, node_create

from .builders import rule_make
from .conftest import SCHEDULED

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def as_user(client, users):
    def login(name: str) -> Client:
        client.force_login(users[name])
        return client

    return login


@pytest.fixture
def setup(project, users, tmp_path):
    load = node_create(project, "load_orders", owner=users["alice"], type="shell")
    wh = Datasource.objects.create(
        project=project, name="wh", kind="sqlite", path=str(tmp_path / "wh.db")
    )
    rule = rule_make(
        load,
        wh,
        metric="null_ratio",
        field="email",
        where="ds = '${bizdate}'",
        threshold=0.1,
        operator="<=",
    )
    instances = [
        instance_create(load, SCHEDULED + datetime.timedelta(days=n), state="succeeded")
        for n in range(3)
    ]
    values = [0.05, 0.5, None]
    for n, (instance, value) in enumerate(zip(instances, values, strict=True)):
        FieldRuleResult.objects.create(
            rule=rule,
            instance=instance,
            attempt=1,
            scheduled_at=instance.scheduled_at,
            value=value,
            compared=value,
            expected="<= 0.1",
            passed=value is not None and value <= 0.1,
            error="" if value is not None else 'no such table: "orders"',
            checked_at=instance.scheduled_at + datetime.timedelta(minutes=n + 1),
        )
    return {"load": load, "wh": wh, "rule": rule, "instances": instances}


def test_the_rule_list_shows_each_rule_its_last_result_and_a_sparkline(setup, as_user):
    rule = setup["rule"]
    page = as_user("vera").get("/quality/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-rule="{rule.pk}"' in html
    assert "null_ratio(email) of orders where ds = &#x27;${bizdate}&#x27;" in html
    assert "&lt;= 0.1" in html
    # The newest check errored; the line has its two values and the failed one in red.
    assert 'data-check="error"' in html and "no such table" in html
    assert '<svg class="sparkline"' in html and 'class="spark-failed"' in html
    assert 'class="spark-error"' in html
    assert "last 3 results, from 0.05 to 0.5" in html
    assert 'href="/quality/"' in html  # the main navigation's Quality entry
    # New rule: only for those who may make one somewhere.
    assert 'data-action="new-rule"' not in html
    assert 'data-action="new-rule"' in as_user("dave").get("/quality/").content.decode()
    assert f'data-rule="{rule.pk}"' not in as_user("stranger").get("/quality/").content.decode()


def test_a_rules_page_pages_through_its_results(setup, as_user, monkeypatch):
    from apps.quality import views

    monkeypatch.setattr(views, "RESULTS_PAGE", 2)
    rule, instances = setup["rule"], setup["instances"]
    client = as_user("vera")
    page = client.get(f"/quality/{rule.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count("data-result=") == 2
    assert 'data-status="error"' in html and 'data-status="failed"' in html
    assert "spark-large" in html and f"/api/field-rules/{rule.pk}/results" in html
    cursor = re.search(r'href="\?cursor=([^"]+)"', html).group(1)
    rest = client.get(f"/quality/{rule.pk}/?cursor={cursor}", **HTMX).content.decode()
    assert 'id="rule-results"' in rest and "<html" not in rest
    assert rest.count("data-result=") == 1 and f"/instances/{instances[0].pk}/" in rest
    assert client.get(f"/quality/{rule.pk}/?cursor=bogus").status_code == 404
    assert as_user("stranger").get(f"/quality/{rule.pk}/").status_code == 404


def _form(setup, **changes) -> dict:
    form = {
        "node": str(setup["load"].pk),
        "datasource": "wh",
        "metric": "row_count",
        "table": "public.orders",
        "field": "",
        "where": "ds = '${bizdate}'",
        "sql": "",
        "operator": ">",
        "threshold": "1000",
        "threshold_high": "",
        "compare": "change_pct_vs_avg7",
        "severity": "block",
        "enabled": "on",
    }
    form.update(changes)
    return form


def test_creating_a_rule_from_a_node(setup, as_user):
    client = as_user("alice")
    load = setup["load"]
    form_page = client.get(f"/quality/new/?node={load.pk}").content.decode()
    assert f'<option value="{load.pk}" selected>load_orders</option>' in form_page
    assert '<option value="wh">wh (SQLite)</option>' in form_page
    response = client.post("/quality/new/", _form(setup, project="acme"))
    rule = FieldRule.objects.exclude(pk=setup["rule"].pk).get()
    assert response.status_code == 302 and response["Location"] == f"/quality/{rule.pk}/"
    assert (rule.table, rule.threshold, rule.compare, rule.node_id) == (
        "public.orders",
        1000.0,
        "change_pct_vs_avg7",
        load.pk,
    )
    assert OperationLog.objects.filter(action="field_rule.create", source="ui").exists()


@pytest.mark.parametrize(
    "changes,field,message",
    [
        ({"table": "orders; DROP TABLE orders"}, "table", "not a plain SQL name"),
        ({"table": 'or"ders'}, "table", "not a plain SQL name"),
        ({"operator": "between"}, "threshold_high", "between needs threshold_high"),
        ({"metric": "avg"}, "field", "avg measures one column"),
        ({"threshold": "a lot"}, "threshold", "a finite number"),
        ({"node": "999999"}, "node", "no node 999999"),
    ],
)
def test_a_bad_form_comes_back_422_with_the_error_by_its_field(
    setup, as_user, changes, field, message
):
    client = as_user("alice")
    response = client.post("/quality/new/", _form(setup, project="acme", **changes), **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert html.strip().startswith('<div id="rule-form-block">')
    block = html.split(f'data-field="{field}"', 1)[1].split("</div>", 1)[0]
    assert message in block
    assert FieldRule.objects.count() == 1


def test_editing_and_deleting_a_rule(setup, as_user):
    rule = setup["rule"]
    client = as_user("alice")
    page = client.get(f"/quality/{rule.pk}/edit/").content.decode()
    assert 'value="email"' in page and 'data-action="save"' in page
    response = client.post(
        f"/quality/{rule.pk}/edit/",
        _form(
            setup,
            metric="null_ratio",
            field="email",
            operator="<=",
            threshold="0.2",
            compare="value",
            severity="warn",
        ),
        **HTMX,
    )
    assert response.status_code == 200 and response["HX-Redirect"] == f"/quality/{rule.pk}/"
    rule.refresh_from_db()
    assert (rule.threshold, rule.severity, rule.table) == (0.2, "warn", "public.orders")
    assert client.post(f"/quality/{rule.pk}/delete/").status_code == 302
    assert not FieldRule.objects.exists() and not FieldRuleResult.objects.exists()


def test_who_may_change_what_on_the_pages(setup, as_user, project, users):
    rule = setup["rule"]
    # A viewer reads the form but cannot save it.
    page = as_user("vera").get(f"/quality/{rule.pk}/edit/").content.decode()
    assert "<fieldset disabled" in page and 'data-action="save"' not in page
    # A developer may not change a production node's rule: 403, nothing changed.
    dev = as_user("dave")
    response = dev.post(f"/quality/{rule.pk}/edit/", _form(setup, threshold="5"))
    assert response.status_code == 403
    assert "needs the admin role" in response.content.decode()
    assert FieldRule.objects.get(pk=rule.pk).threshold == 0.1
    # ... but makes rules of a dev node.
    dev_node = node_create(project, "scratch", owner=users["dave"], type="shell", env="dev")
    made = dev.post("/quality/new/", _form(setup, node=str(dev_node.pk), project="acme"))
    assert made.status_code == 302
    assert FieldRule.objects.filter(node=dev_node).exists()
    dev.post(f"/quality/{rule.pk}/delete/")
    assert FieldRule.objects.filter(pk=rule.pk).exists()


def test_the_node_page_shows_its_rules_with_a_sparkline(setup, as_user, project, users):
    load, rule = setup["load"], setup["rule"]
    html = as_user("alice").get(f"/nodes/{load.pk}/").content.decode()
    panel = html.split('id="field-rules"', 1)[1].split("</section>", 1)[0]
    assert f'href="/quality/{rule.pk}/"' in panel and "null_ratio(email) of orders" in panel
    assert '<svg class="sparkline"' in panel and "last 3 results" in panel
    assert f'href="/quality/new/?node={load.pk}"' in panel
    viewer = as_user("vera").get(f"/nodes/{load.pk}/").content.decode()
    assert 'id="field-rules"' in viewer and 'data-action="new-field-rule"' not in viewer
    group = node_create(project, "group", owner=users["alice"])
    assert 'id="field-rules"' not in as_user("alice").get(f"/nodes/{group.pk}/").content.decode()


def test_the_instance_page_shows_what_its_checks_found(setup, as_user):
    instances = setup["instances"]
    html = as_user("vera").get(f"/instances/{instances[1].pk}/").content.decode()
    panel = html.split('id="field-rule-results"', 1)[1].split("</section>", 1)[0]
    assert 'data-status="failed"' in panel and ">0.5<" in panel and "&lt;= 0.1" in panel
    unchecked = instance_create(setup["load"], SCHEDULED - datetime.timedelta(days=9))
    assert (
        'id="field-rule-results"'
        not in as_user("vera").get(f"/instances/{unchecked.pk}/").content.decode()
    )


def test_every_admin_page_opens_and_checks_like_the_api(setup, users, client):
    client.force_login(users["root"])
    rule = setup["rule"]
    result = FieldRuleResult.objects.first()
    for url in [
        "/admin/quality/fieldrule/",
        "/admin/quality/fieldrule/add/",
        f"/admin/quality/fieldrule/{rule.pk}/change/",
        "/admin/quality/fieldruleresult/",
        f"/admin/quality/fieldruleresult/{result.pk}/change/",
    ]:
        assert client.get(url).status_code == 200, url
    form = {
        "project": rule.project_id,
        "node": setup["load"].pk,
        "datasource": setup["wh"].pk,
        "table": "orders; DROP TABLE orders",
        "field": "",
        "where": "",
        "metric": "row_count",
        "sql": "",
        "operator": "between",
        "threshold": "1",
        "threshold_high": "",
        "compare": "value",
        "severity": "block",
    }
    response = client.post("/admin/quality/fieldrule/add/", form)
    assert response.status_code == 200
    page = response.content.decode()
    assert "not a plain SQL name" in page and "between needs threshold_high" in page
    assert FieldRule.objects.count() == 1
    form.update(table="orders", threshold_high="5", enabled="on")
    assert client.post("/admin/quality/fieldrule/add/", form).status_code == 302
    assert FieldRule.objects.count() == 2
