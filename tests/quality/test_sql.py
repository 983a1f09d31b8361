"""The statements field rules run and how their answers are judged (pure functions)."""

import pytest

from apps.quality import sql
from apps.quality.runner import number


@pytest.mark.parametrize(
    "name",
    ["orders", "Orders_2026", "_t", "public.orders", "main.t1"],
)
def test_plain_and_schema_qualified_names_are_tables(name):
    assert sql.identifier_error(name, qualified=True) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        'orders"; DROP TABLE orders; --',
        "orders; DROP TABLE x",
        "o'rders",
        "orders--",
        "or ders",
        "1orders",
        "a.b.c",
        "public.",
        ".orders",
        "orders)",
        "ordérs",
        "x" * 64,
    ],
)
def test_anything_else_is_refused_as_a_table(name):
    assert sql.identifier_error(name, qualified=True)


def test_a_field_is_one_name():
    assert sql.identifier_error("email", qualified=False) is None
    assert "no dots" in sql.identifier_error("t.email", qualified=False)
    with pytest.raises(sql.RuleError):
        sql.quote_identifier('e"mail', "postgresql")


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_names_are_quoted_part_by_part(dialect):
    assert sql.quote_identifier("public.Orders", dialect, qualified=True) == '"public"."Orders"'
    assert sql.quote_identifier("email", dialect) == '"email"'


def test_an_unknown_dialect_builds_nothing():
    with pytest.raises(sql.RuleError, match="unsupported datasource kind"):
        sql.quote_identifier("t", "mysql")


EXPECTED = {
    "row_count": 'SELECT COUNT(*) FROM "s"."t"',
    "null_count": 'SELECT COUNT(*) - COUNT("f") FROM "s"."t"',
    "distinct_count": 'SELECT COUNT(DISTINCT "f") FROM "s"."t"',
    "min": 'SELECT MIN("f") FROM "s"."t"',
    "max": 'SELECT MAX("f") FROM "s"."t"',
    "sum": 'SELECT SUM("f") FROM "s"."t"',
    "avg": 'SELECT AVG("f") FROM "s"."t"',
}


@pytest.mark.parametrize("metric", sorted(EXPECTED))
def test_each_metric_has_its_statement(metric):
    field = "" if metric == "row_count" else "f"
    built = sql.statement(
        metric=metric, table="s.t", field=field, where="", sql="", dialect="postgresql"
    )
    assert built == EXPECTED[metric]


def test_null_ratio_divides_as_a_float_in_each_dialect():
    pg = sql.statement(
        metric="null_ratio", table="t", field="f", where="", sql="", dialect="postgresql"
    )
    lite = sql.statement(
        metric="null_ratio", table="t", field="f", where="", sql="", dialect="sqlite"
    )
    assert "AS DOUBLE PRECISION) / NULLIF(COUNT(*), 0)" in pg
    assert "AS REAL) / NULLIF(COUNT(*), 0)" in lite


def test_where_is_one_expression_in_parentheses():
    built = sql.statement(
        metric="row_count",
        table="t",
        field="",
        where="ds = '2026;11' -- today",
        sql="",
        dialect="sqlite",
    )
    # The comment cannot swallow the closing parenthesis: it ends on its own line.
    assert built == "SELECT COUNT(*) FROM \"t\" WHERE (ds = '2026;11' -- today\n)"
    assert "no semicolon" in sql.where_error("a = 1; DELETE FROM t")
    # It cannot close the parentheses it is put in and go on as another query.
    assert "closes nothing" in sql.where_error("1 = 1) UNION SELECT password FROM users WHERE (1")
    assert "not closed" in sql.where_error("(a = 1")
    assert sql.where_error("a = 1 AND b IN (SELECT x FROM y)") is None
    # Semicolons and parentheses inside literals, quoted names and comments are text.
    assert sql.where_error("note = ';)' AND \"we;ird\" = 1 /* ; ) */") is None


def test_custom_sql_is_one_query():
    assert sql.custom_sql_error("SELECT 1;") is None
    assert sql.custom_sql_error("-- count\nWITH x AS (SELECT 1) SELECT * FROM x") is None
    assert sql.custom_sql_error("(SELECT 1)") is None
    assert "exactly one" in sql.custom_sql_error("SELECT 1; SELECT 2")
    assert "a query" in sql.custom_sql_error("DELETE FROM t")
    assert "exactly one" in sql.custom_sql_error("-- nothing")
    built = sql.statement(
        metric="custom_sql", table="", field="", where="", sql="SELECT 2 ;\n", dialect="sqlite"
    )
    assert built == "SELECT 2"


def test_a_field_metric_without_a_field_builds_nothing():
    with pytest.raises(sql.RuleError):
        sql.statement(metric="sum", table="t", field="", where="", sql="", dialect="sqlite")


@pytest.mark.parametrize(
    "operator,value,passes,fails",
    [
        ("<", 10, [9.99], [10, 11]),
        ("<=", 10, [10, 9], [10.01]),
        (">", 10, [10.01], [10, 9]),
        (">=", 10, [10, 11], [9.99]),
        ("==", 10, [10, 10 + 1e-12], [10.01]),
        ("!=", 10, [10.01], [10]),
    ],
)
def test_each_operator(operator, value, passes, fails):
    for x in passes:
        assert sql.satisfies(operator, x, value, None), (operator, x)
    for x in fails:
        assert not sql.satisfies(operator, x, value, None), (operator, x)


def test_between_includes_its_bounds_and_needs_the_upper_one():
    assert sql.satisfies("between", 10, 10, 20) and sql.satisfies("between", 20, 10, 20)
    assert not sql.satisfies("between", 9.9, 10, 20)
    assert not sql.satisfies("between", 20.1, 10, 20)
    with pytest.raises(sql.RuleError):
        sql.satisfies("between", 15, 10, None)
    with pytest.raises(sql.RuleError):
        sql.satisfies("~", 15, 10, None)


def test_change_in_percent_and_what_it_is_against():
    assert sql.change_pct(120, 100) == pytest.approx(20)
    assert sql.change_pct(50, 100) == pytest.approx(-50)
    assert sql.change_pct(-50, -100) == pytest.approx(50)
    assert sql.change_pct(0, 0) == 0
    with pytest.raises(sql.RuleError, match="is 0"):
        sql.change_pct(5, 0)
    history = [7, 1, 2, 3, 4, 5, 6, 1000]  # newest first
    assert sql.baseline_of("change_pct_vs_previous", history) == 7
    assert sql.baseline_of("change_pct_vs_avg7", history) == pytest.approx(4)
    assert sql.baseline_of("change_pct_vs_avg7", [3]) == 3
    assert sql.baseline_of("change_pct_vs_previous", []) is None
    assert sql.baseline_of("value", history) is None


def test_the_runner_takes_one_finite_number():
    assert number([(5,)]) == (5.0, "")
    assert number([("12.5",)]) == (12.5, "")
    from decimal import Decimal

    assert number([(Decimal("30.00"),)]) == (30.0, "")
    assert number([])[1] == "the query returned no row"
    assert number([(1,), (2,)])[1] == "the query returned more than one row"
    assert "2 columns" in number([(1, 2)])[1]
    assert "NULL" in number([(None,)])[1]
    assert "not a number" in number([("abc",)])[1]
    assert "not a finite number" in number([(float("nan"),)])[1]
