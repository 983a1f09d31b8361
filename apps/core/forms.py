"""Shared helpers of the server-rendered forms: a service's field errors put back next to
the inputs they name."""


def field_errors(errors: list[dict]) -> dict[str, list[str]]:
    """{"field": [messages]} for the inputs; errors naming no field stay in the list on
    top of the form."""
    by_field: dict[str, list[str]] = {}
    for error in errors:
        if error.get("field"):
            by_field.setdefault(error["field"], []).append(error["message"])
    return by_field
