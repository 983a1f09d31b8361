"""The resource group and throttling rule forms of the pages: a posted form in the terms
of capacity_services (the API's JSON shapes), and the services' field errors put back
next to their fields.

Values are passed on typed where they parse and as typed in where they do not, so the
service's own message ("a whole number from 1 to 100000") names what is wrong: one
source of validation for the API and the pages.
"""

from django.http import QueryDict


def _number(raw: str, kind=int):
    """ "" -> None; "12" -> 12; "abc" -> "abc" (the service says what is wrong)."""
    raw = (raw or "").strip()
    if raw == "":
        return None
    try:
        return kind(raw)
    except ValueError:
        return raw


def group_data(post: QueryDict, *, creating: bool) -> dict:
    data = {
        "description": post.get("description", ""),
        "max_concurrency": _number(post.get("max_concurrency", "")),
        "cpu_capacity": _number(post.get("cpu_capacity", ""), float),
        "memory_capacity_mb": _number(post.get("memory_capacity_mb", "")),
    }
    if creating:
        data["name"] = post.get("name", "").strip()
    return data


def rule_data(post: QueryDict) -> dict:
    return {
        "name": post.get("name", "").strip(),
        "scope_kind": post.get("scope_kind", ""),
        "scope_value": post.get("scope_value", "").strip(),
        "max_concurrency": _number(post.get("max_concurrency", "")),
        "window_start": post.get("window_start", "").strip() or None,
        "window_end": post.get("window_end", "").strip() or None,
        "enabled": post.get("enabled") == "on",
    }


def field_errors(errors: list[dict]) -> dict[str, list[str]]:
    """{"field": [messages]} for the inputs; errors naming no field stay in the list on
    top of the form."""
    by_field: dict[str, list[str]] = {}
    for error in errors:
        if error.get("field"):
            by_field.setdefault(error["field"], []).append(error["message"])
    return by_field
