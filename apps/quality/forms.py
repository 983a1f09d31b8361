"""The field rule form of the pages: what a posted form becomes in the services' terms,
and the services' field errors put back next to the fields they name.

Values are passed on typed where they parse and as typed in where they do not, so the
service's own message names what is wrong: one validation for the API, admin and pages.
"""

from django.http import QueryDict

from .services import RULE_DEFAULTS

FORM_FIELDS = (
    "node",
    "datasource",
    "metric",
    "table",
    "field",
    "where",
    "sql",
    "operator",
    "threshold",
    "threshold_high",
    "compare",
    "severity",
    "channels",
    "enabled",
)


def _int_or_raw(text: str):
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 19 else text


def _number_or_raw(text: str):
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return text


def rule_form_data(post: QueryDict) -> dict:
    """A posted form as services.field_rule_create/update take it."""
    high = post.get("threshold_high", "").strip()
    return {
        "node": _int_or_raw(post.get("node", "")),
        "datasource": post.get("datasource", "").strip(),
        "metric": post.get("metric", "").strip(),
        "table": post.get("table", "").strip(),
        "field": post.get("field", "").strip(),
        "where": post.get("where", "").replace("\r\n", "\n").strip(),
        "sql": post.get("sql", "").replace("\r\n", "\n").strip(),
        "operator": post.get("operator", "").strip(),
        "threshold": _number_or_raw(post.get("threshold", "")),
        "threshold_high": _number_or_raw(high) if high else None,
        "compare": post.get("compare", "").strip(),
        "severity": post.get("severity", "").strip(),
        "channels": [_int_or_raw(value) for value in post.getlist("channels") if value.strip()],
        "enabled": post.get("enabled") == "on",
    }


def blank_form_data(node_id: int | None = None) -> dict:
    return {
        **RULE_DEFAULTS,
        "node": node_id,
        "datasource": "",
        "metric": "row_count",
        "operator": ">",
        "threshold": "",
    }


def field_errors(errors: list[dict]) -> dict[str, list[str]]:
    """{"field": [messages]} for the form; errors about no field go under ""."""
    found: dict[str, list[str]] = {}
    for error in errors:
        name = error.get("field", "").split(".", 1)[0]
        found.setdefault(name if name in FORM_FIELDS else "", []).append(error["message"])
    return found
