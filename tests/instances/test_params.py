import datetime
import zoneinfo

import pytest

from apps.instances.params import ParamContext, UnknownParameter, render, render_value

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def ctx(**overrides) -> ParamContext:
    values = {
        "biz_date": datetime.date(2026, 11, 21),
        "cyctime": datetime.datetime(2026, 11, 22, 2, 30, 5, tzinfo=SHANGHAI),
        "variables": {"db": "warehouse", "region": "cn-east"},
        "params": {"table": "orders", "limit": 10},
    }
    values.update(overrides)
    return ParamContext(**values)


def test_builtin_dates_default_formats():
    assert render("d=${bizdate} t=${cyctime}", ctx()) == "d=20261121 t=20261122023005"


def test_builtin_dates_with_strftime_formats():
    text = "${bizdate:%Y-%m-%d} ${cyctime:%Y-%m-%d %H:%M} ${cyctime:%H}"
    assert render(text, ctx()) == "2026-11-21 2026-11-22 02:30 02"


def test_cyctime_is_taken_in_the_context_timezone_as_given():
    # The worker passes the scheduled time in the project timezone; it is not converted.
    utc_time = datetime.datetime(2026, 11, 21, 18, 30, tzinfo=datetime.UTC)
    shanghai = utc_time.astimezone(SHANGHAI)
    assert render("${cyctime}", ctx(cyctime=shanghai)) == "20261122023000"


def test_project_variables_and_node_parameters():
    text = "select * from ${var.db}.${table} limit ${limit} -- ${var.region}"
    assert render(text, ctx()) == "select * from warehouse.orders limit 10 -- cn-east"


def test_whitespace_inside_braces_is_ignored():
    assert render("${ bizdate } ${ var.db }", ctx()) == "20261121 warehouse"


def test_text_without_references_is_unchanged():
    text = "echo $HOME $1 $$ {not a param} $"
    assert render(text, ctx()) == text


def test_unknown_parameters_are_all_listed_at_once():
    with pytest.raises(UnknownParameter) as caught:
        render("${foo} ${bizdate} ${var.bar} ${foo} ${nope:%Y}", ctx())
    message = str(caught.value)
    assert message == "unknown parameter(s): ${foo}, ${var.bar}, ${nope:%Y}"
    assert caught.value.problems == ["${foo}", "${var.bar}", "${nope:%Y}"]


def test_bash_style_references_must_be_escaped():
    with pytest.raises(UnknownParameter, match=r"\$\{HOME\}"):
        render('echo "${HOME}"', ctx())
    assert render('echo "$${HOME}" ${bizdate}', ctx()) == 'echo "${HOME}" 20261121'


def test_escape_is_never_resolved_even_for_known_names():
    assert render("$${bizdate} $${var.db}", ctx()) == "${bizdate} ${var.db}"


def test_unterminated_reference_is_refused_not_copied():
    with pytest.raises(UnknownParameter, match=r"unterminated parameter\(s\): \$\{bizdate"):
        render("a ${bizdate\nb", ctx())


def test_empty_references_and_formats_are_unknown():
    with pytest.raises(UnknownParameter) as caught:
        render("${} ${var.} ${bizdate:}", ctx())
    assert caught.value.problems == ["${}", "${var.}", "${bizdate:}"]


def test_a_parameter_value_may_reference_dates_variables_and_other_parameters():
    params = {"day": "${bizdate:%Y-%m-%d}", "path": "/data/${var.region}/${day}", "x": "${path}"}
    assert render("ls ${x}", ctx(params=params)) == "ls /data/cn-east/2026-11-21"


def test_a_variable_value_may_reference_the_dates():
    variables = {"partition": "dt=${bizdate}"}
    assert render("${var.partition}", ctx(variables=variables)) == "dt=20261121"


def test_escape_inside_a_parameter_value_stays_literal():
    params = {"script": "echo $${USER}"}
    assert render("${script}", ctx(params=params)) == "echo ${USER}"


def test_unknown_reference_inside_a_value_names_where_it_was_found():
    with pytest.raises(UnknownParameter) as caught:
        render("${day}", ctx(params={"day": "${bizdat}"}))
    assert str(caught.value) == "unknown parameter(s): ${bizdat} (in ${day})"


def test_recursive_parameters_are_refused_without_hanging():
    params = {"a": "x${b}", "b": "${a}", "self": "${self}"}
    with pytest.raises(UnknownParameter) as caught:
        render("${a} ${self}", ctx(params=params))
    message = str(caught.value)
    assert "recursive parameter(s): ${a} -> ${b} -> ${a}" in message
    assert "${self} -> ${self}" in message


def test_builtin_names_win_over_node_parameters():
    assert render("${bizdate}", ctx(params={"bizdate": "nope"})) == "20261121"


def test_none_and_numbers_become_text():
    assert render("[${n}][${none}]", ctx(params={"n": 3.5, "none": None})) == "[3.5][]"


def test_render_value_walks_dicts_and_lists():
    spec = {
        "url": "http://api.local/run?date=${bizdate:%Y-%m-%d}",
        "method": "POST",
        "headers": {"X-${table}": "${var.db}"},
        "body": {"tables": ["${table}", "static"], "limit": 5, "dry": False},
        "timeout": 30,
    }
    assert render_value(spec, ctx()) == {
        "url": "http://api.local/run?date=2026-11-21",
        "method": "POST",
        "headers": {"X-orders": "warehouse"},
        "body": {"tables": ["orders", "static"], "limit": 5, "dry": False},
        "timeout": 30,
    }


def test_render_value_lists_every_unknown_of_the_whole_structure():
    with pytest.raises(UnknownParameter) as caught:
        render_value({"url": "${a}", "body": ["${var.b}", {"k": "${c}"}]}, ctx())
    assert str(caught.value) == "unknown parameter(s): ${a}, ${var.b}, ${c}"


def test_render_value_of_plain_text():
    assert render_value("${bizdate}", ctx()) == "20261121"
