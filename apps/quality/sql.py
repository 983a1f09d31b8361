"""What a field rule asks the datasource, and how its answer is judged: pure functions.

Table and field names are identifiers: letters, digits and underscores, not starting
with a digit; a table may be schema-qualified (`schema.table`). They are checked when a
rule is saved and again when its statement is built, and always written quoted ("name",
quotes doubled, as PostgreSQL and SQLite both read them), so no name can carry SQL.
Quoted names are exact: write them as the database stores them (PostgreSQL folds the
unquoted names of CREATE TABLE to lower case).

`where` and `custom_sql` are SQL their author writes on purpose (with the parameters of
SPEC section 2 substituted first); each must be one expression or one statement, and
they run in a read-only transaction (apps.quality.runner).
"""

import functools
import math
import re

import sqlparse
from sqlparse.tokens import Punctuation

from .choices import FIELD_METRICS, Compare, Metric, Operator

DIALECTS = ("postgresql", "sqlite")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# PostgreSQL's limit; SQLite has none worth naming.
IDENTIFIER_MAX = 63


class RuleError(ValueError):
    """The rule cannot be turned into a statement (its check counts as an error)."""


def identifier_error(value: str, *, qualified: bool) -> str | None:
    """Why `value` is not a (schema-qualified, when `qualified`) identifier, or None."""
    if not isinstance(value, str) or not value:
        return "a name is required"
    parts = value.split(".")
    if len(parts) > (2 if qualified else 1):
        return (
            "at most schema.table: letters, digits and underscores"
            if qualified
            else "one column name: letters, digits and underscores (no dots)"
        )
    for part in parts:
        if not IDENTIFIER.match(part):
            return (
                f"{part!r} is not a plain SQL name: letters, digits and underscores, "
                "not starting with a digit (no quotes, spaces or semicolons)"
            )
        if len(part) > IDENTIFIER_MAX:
            return f"{part[:20]}…: at most {IDENTIFIER_MAX} characters per name"
    return None


def quote_identifier(name: str, dialect: str, *, qualified: bool = False) -> str:
    """`name` quoted for `dialect` (schema.table quoted part by part)."""
    if dialect not in DIALECTS:
        raise RuleError(f"unsupported datasource kind {dialect!r}")
    problem = identifier_error(name, qualified=qualified)
    if problem:
        raise RuleError(problem)
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def split_statements(sql: str) -> list[str]:
    """The statements of `sql`, without empty and comment-only ones."""
    statements = []
    for statement in sqlparse.split(sql):
        code = sqlparse.format(statement, strip_comments=True).strip().rstrip(";").strip()
        if code:
            statements.append(statement.strip())
    return statements


@functools.lru_cache(maxsize=1024)  # the rules of a node often share their filter
def where_error(where: str) -> str | None:
    """Why `where` is not one filter expression, or None: outside its string literals,
    quoted names and comments it has no semicolon and its parentheses balance (so it
    stays inside the parentheses it is put in)."""
    depth = 0
    for statement in sqlparse.parse(where):
        for token in statement.flatten():
            if token.ttype not in Punctuation:
                continue
            if token.value == ";":
                return "one filter expression: no semicolon"
            depth += {"(": 1, ")": -1}.get(token.value, 0)
            if depth < 0:
                return "a ')' closes nothing: parentheses must balance"
    if depth:
        return "a '(' is not closed: parentheses must balance"
    return None


@functools.lru_cache(maxsize=1024)
def custom_sql_error(sql: str) -> str | None:
    """Why `sql` is not one query (SELECT or WITH), or None."""
    statements = split_statements(sql)
    if len(statements) != 1:
        return "exactly one statement, a query returning one number"
    code = sqlparse.format(statements[0], strip_comments=True).lstrip("( \t\r\n")
    first = re.match(r"[A-Za-z]*", code).group(0).upper()
    if first not in ("SELECT", "WITH", "VALUES"):
        return "a query (SELECT or WITH … SELECT) returning one number"
    return None


def _float_type(dialect: str) -> str:
    return "DOUBLE PRECISION" if dialect == "postgresql" else "REAL"


def metric_expression(metric: str, column: str | None, dialect: str) -> str:
    """The aggregate of `metric` over the quoted `column`."""
    if metric == Metric.ROW_COUNT:
        return "COUNT(*)"
    if column is None:
        raise RuleError(f"{metric} needs a field")
    return {
        Metric.NULL_COUNT: f"COUNT(*) - COUNT({column})",
        Metric.NULL_RATIO: (
            f"CAST(COUNT(*) - COUNT({column}) AS {_float_type(dialect)}) / NULLIF(COUNT(*), 0)"
        ),
        Metric.DISTINCT_COUNT: f"COUNT(DISTINCT {column})",
        Metric.MIN: f"MIN({column})",
        Metric.MAX: f"MAX({column})",
        Metric.SUM: f"SUM({column})",
        Metric.AVG: f"AVG({column})",
    }[metric]


def statement(*, metric: str, table: str, field: str, where: str, sql: str, dialect: str) -> str:
    """The one query a rule runs (`where` and `sql` already have their parameters)."""
    if dialect not in DIALECTS:
        raise RuleError(f"unsupported datasource kind {dialect!r}")
    if metric == Metric.CUSTOM_SQL:
        problem = custom_sql_error(sql)
        if problem:
            raise RuleError(f"custom SQL: {problem}")
        return split_statements(sql)[0].rstrip().rstrip(";").rstrip()
    if metric not in Metric.values:
        raise RuleError(f"unknown metric {metric!r}")
    column = quote_identifier(field, dialect) if metric in FIELD_METRICS else None
    text = f"SELECT {metric_expression(metric, column, dialect)} FROM "
    text += quote_identifier(table, dialect, qualified=True)
    if where.strip():
        problem = where_error(where)
        if problem:
            raise RuleError(f"where: {problem}")
        text += f" WHERE ({where}\n)"
    return text


# --- judging -------------------------------------------------------------------------


def change_pct(value: float, base: float) -> float:
    """The change of `value` from `base` in percent (of base's size)."""
    if base == 0:
        if value == 0:
            return 0.0
        raise RuleError("the value compared with is 0: a change in percent has no meaning")
    return (value - base) / abs(base) * 100.0


def baseline_of(compare: str, history: list[float]) -> float | None:
    """What a compare mode measures against, from the earlier values newest first; None
    when there is none yet."""
    if compare == Compare.CHANGE_PCT_VS_PREVIOUS:
        return history[0] if history else None
    if compare == Compare.CHANGE_PCT_VS_AVG7:
        window = history[:7]
        return sum(window) / len(window) if window else None
    return None


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def satisfies(operator: str, value: float, threshold: float, high: float | None) -> bool:
    """Whether `value` meets `operator threshold` (`between`: threshold ≤ value ≤ high,
    bounds included). == and != allow for floating point (relative 1e-9)."""
    if operator == Operator.LT:
        return value < threshold
    if operator == Operator.LE:
        return value <= threshold or _same(value, threshold)
    if operator == Operator.GT:
        return value > threshold
    if operator == Operator.GE:
        return value >= threshold or _same(value, threshold)
    if operator == Operator.EQ:
        return _same(value, threshold)
    if operator == Operator.NE:
        return not _same(value, threshold)
    if operator == Operator.BETWEEN:
        if high is None:
            raise RuleError("between needs threshold_high")
        return (value >= threshold or _same(value, threshold)) and (
            value <= high or _same(value, high)
        )
    raise RuleError(f"unknown operator {operator!r}")


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
