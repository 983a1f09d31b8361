"""The resource group and throttling rule forms of the pages: a posted form in the terms
of capacity_services (the API's JSON shapes); the services' field errors go back next
to their fields through apps.core.forms.field_errors.

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
