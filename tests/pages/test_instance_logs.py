"""An attempt's log for the operator: search with highlighting, tail, download, error
lines marked, the failure diagnosis quoting the last error lines, and a rerun's attempt
linking to the one it replaced."""

import datetime
import re

import pytest

from apps.instances import logs
from apps.instances.diagnosis import diagnose
from apps.instances.models import Attempt
from tests.pages.builders import T0, attempt_finish, log_append, running_instance

# A log whose lines are cut across chunks, with an HTML-looking error line.
CHUNKS = [
    "starting <job>\nreading orders",
    " from s3\nrow 1 ok\nWARNING slow\n",
    "Traceback (most recent call last):\n  File x.py\nValueError: bad <b>row</b>\n",
    "retrying orders\nFATAL: giving up on orders",
]


@pytest.fixture
def olga(client, users):
    client.force_login(users["olga"])
    return client


@pytest.fixture
def failed(users, project):
    instance = running_instance(project, users["alice"], log=CHUNKS)
    attempt_finish(instance, state="failed", exit_code=1)
    instance.refresh_from_db()
    return instance


def test_lines_join_across_chunks_and_are_numbered(failed):
    attempt = failed.attempts.get()
    lines = [(line.number, line.text) for line in logs.log_lines(attempt)]
    assert lines[1] == (2, "reading orders from s3")
    assert lines[-1] == (9, "FATAL: giving up on orders")
    assert [line.number for line in logs.log_tail(attempt=attempt, lines=3)] == [7, 8, 9]


def test_search_highlights_matches_escaped(olga, failed):
    response = olga.get(f"/instances/{failed.id}/log/view?attempt=1&q=orders")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-matches="3"' in html and "3 lines of 9 hold" in html
    shown = re.findall(r'data-line="(\d+)"', html)
    assert shown == ["2", "8", "9"]
    assert "reading <mark>orders</mark> from s3" in html
    # Case-insensitive, and the line's HTML is escaped around the mark.
    html = olga.get(f"/instances/{failed.id}/log/view?q=%3Cb%3E").content.decode()
    assert "ValueError: bad <mark>&lt;b&gt;</mark>row&lt;/b&gt;" in html
    assert "<b>row</b>" not in html


def test_tail_shows_the_last_lines_with_error_lines_marked(olga, failed):
    html = olga.get(f"/instances/{failed.id}/log/view?tail=4").content.decode()
    assert re.findall(r'data-line="(\d+)"', html) == ["6", "7", "8", "9"]
    errors = re.findall(r'class="log-line log-error" data-line="(\d+)"', html)
    assert errors == ["7", "9"]  # ValueError..., FATAL...
    assert "2 error lines" in html
    # Without ?tail, the last 200 lines: all nine; Traceback is an error line too.
    html = olga.get(f"/instances/{failed.id}/log/view").content.decode()
    assert re.findall(r'class="log-line log-error" data-line="(\d+)"', html) == ["5", "7", "9"]


@pytest.mark.parametrize(
    "query, field",
    [("tail=0", "tail"), ("tail=abc", "tail"), ("tail=10001", "tail"), ("q=" + "x" * 201, "q")],
)
def test_bad_parameters_answer_400_naming_the_field(olga, failed, query, field):
    response = olga.get(f"/instances/{failed.id}/log/view?{query}")
    assert response.status_code == 400
    assert f"<strong>{field}</strong>" in response.content.decode()


def test_unknown_attempt_or_stranger_is_404(olga, client, users, failed):
    assert olga.get(f"/instances/{failed.id}/log/view?attempt=7").status_code == 404
    assert olga.get(f"/instances/{failed.id}/log/download?attempt=x").status_code == 404
    client.force_login(users["stranger"])
    assert client.get(f"/instances/{failed.id}/log/view").status_code == 404
    assert client.get(f"/instances/{failed.id}/log/download").status_code == 404


def test_log_pages_need_a_login(client, failed):
    for suffix in ("view", "download"):
        response = client.get(f"/instances/{failed.id}/log/{suffix}")
        assert response.status_code == 302 and "login" in response["Location"]


def test_download_streams_the_whole_log_as_an_attachment(olga, failed):
    response = olga.get(f"/instances/{failed.id}/log/download?attempt=1")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="load_orders-{failed.id}-attempt-1.log"'
    )
    assert b"".join(response.streaming_content).decode() == "".join(CHUNKS)


def test_detail_log_panel_marks_error_lines_and_links_the_tools(olga, failed):
    html = olga.get(f"/instances/{failed.id}/").content.decode()
    panel = html[html.index('id="log-panel"') :]
    assert '<span class="log-error">FATAL: giving up on orders</span>' in panel
    assert '<span class="log-error">ValueError: bad &lt;b&gt;row&lt;/b&gt;\n</span>' in panel
    assert f"/instances/{failed.id}/log/download?attempt=1" in panel
    assert f"/instances/{failed.id}/log/view?attempt=1&amp;tail=200" in panel
    assert "replaces attempt" not in panel  # the first attempt replaced nothing


def test_failure_diagnosis_quotes_the_last_error_lines(olga, failed):
    diagnosis = diagnose(failed)
    (note,) = [n for n in diagnosis.notes if n.kind == "error_excerpt"]
    assert note.detail["attempt"] == 1
    assert [line["text"] for line in note.detail["lines"]] == [
        "Traceback (most recent call last):",
        "ValueError: bad <b>row</b>",
        "FATAL: giving up on orders",
    ]
    html = olga.get(f"/instances/{failed.id}/").content.decode()
    diagnosis_html = html[html.index('id="instance-diagnosis"') :]
    diagnosis_html = diagnosis_html[: diagnosis_html.index("</section>")]
    assert 'data-note="error_excerpt"' in diagnosis_html
    assert "ValueError: bad &lt;b&gt;row&lt;/b&gt;" in diagnosis_html
    assert f"/instances/{failed.id}/log/view?attempt=1" in diagnosis_html


def test_api_diagnosis_carries_the_excerpt(api_as, failed):
    body = api_as("olga").get(f"/api/instances/{failed.id}/diagnosis").json()
    (note,) = [n for n in body["notes"] if n["kind"] == "error_excerpt"]
    assert note["detail"]["lines"][-1] == {
        "number": 9,
        "text": "FATAL: giving up on orders",
        "error": True,
    }


def test_failure_without_error_lines_quotes_its_last_lines(users, project):
    instance = running_instance(project, users["alice"], log=["one\ntwo\n", "three\n"])
    attempt_finish(instance, state="failed", exit_code=3)
    instance.refresh_from_db()
    (note,) = diagnose(instance).notes
    assert "none looks like an error" in note.message
    assert [line["text"] for line in note.detail["lines"]] == ["one", "two", "three"]


def test_a_rerun_links_to_the_attempt_it_replaced(olga, failed):
    second = Attempt.objects.create(
        instance=failed,
        number=2,
        state="running",
        started_at=T0 + datetime.timedelta(minutes=10),
    )
    log_append(second, "again\n")
    html = olga.get(f"/instances/{failed.id}/").content.decode()
    panel = html[html.index('id="log-panel"') :]
    assert (
        f'<a class="log-replaced" data-replaced="1" href="/instances/{failed.id}/?attempt=1">'
        "replaces attempt #1</a>"
    ) in panel


def test_api_searches_and_tails_the_log(api_as, failed):
    client = api_as("olga")
    body = client.get(f"/api/instances/{failed.id}/log/lines?q=ORDERS").json()
    assert (body["attempt"], body["q"], body["matches"], body["truncated"]) == (
        1,
        "ORDERS",
        3,
        False,
    )
    assert [(line["number"], line["spans"]) for line in body["lines"]] == [
        (2, [[8, 14]]),
        (8, [[9, 15]]),
        (9, [[20, 26]]),
    ]
    body = client.get(f"/api/instances/{failed.id}/log/lines?attempt=1&tail=2").json()
    assert body["matches"] is None
    assert body["lines"] == [
        {"number": 8, "text": "retrying orders", "error": False, "spans": []},
        {"number": 9, "text": "FATAL: giving up on orders", "error": True, "spans": []},
    ]


@pytest.mark.parametrize(
    "query, status, field",
    [
        ("tail=0", 422, "tail"),
        ("tail=x", 422, "tail"),
        ("q=" + "y" * 201, 422, "q"),
        ("attempt=5", 404, "attempt"),
    ],
)
def test_api_refuses_bad_log_parameters(api_as, failed, query, status, field):
    response = api_as("olga").get(f"/api/instances/{failed.id}/log/lines?{query}")
    assert response.status_code == status
    assert response.json()["errors"][0]["field"] == field


def test_api_log_lines_of_a_stranger_or_anonymous(api_as, client, failed):
    assert api_as("stranger").get(f"/api/instances/{failed.id}/log/lines").status_code == 404
    assert client.get(f"/api/instances/{failed.id}/log/lines").status_code == 401
