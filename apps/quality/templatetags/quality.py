"""The field rule panels of the node and instance pages, and the sparkline of a rule's
metric (inline SVG: no chart library for a line of 30 points)."""

from django import template
from django.utils.html import format_html, format_html_join

from ..models import FieldRule
from ..selectors import instance_results, spark_values, with_last_result

register = template.Library()


@register.inclusion_tag("quality/_node_panel.html", takes_context=True)
def node_field_rules(context, node):
    """The node's rules with their last result and a sparkline of the metric."""
    from ..views import may_change_rule

    request = context.get("request")
    rules = list(
        with_last_result(FieldRule.objects.filter(node=node).select_related("datasource")).order_by(
            "id"
        )
    )
    series = spark_values([rule.pk for rule in rules])
    return {
        "node": node,
        # A virtual node runs nothing to check: no panel, unless it has rules from before.
        "hidden": node.type == "virtual" and not rules,
        "rows": [{"rule": rule, "spark": series.get(rule.pk, [])} for rule in rules],
        "may_change": bool(request and may_change_rule(request.user, node)),
    }


@register.inclusion_tag("quality/_instance_panel.html")
def instance_field_results(instance):
    """What the node's rules found after each attempt of the instance."""
    return {"instance": instance, "results": instance_results(instance.pk)}


def _number(value: float) -> str:
    return f"{value:,.6g}"


@register.filter
def metric_value(value) -> str:
    """1,234 · 0.4 · 12.3457 · — (none): a measured value, short and exact enough."""
    if value is None or value == "":
        return "—"
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return _number(value)


@register.simple_tag
def sparkline(points, width: int = 120, height: int = 28):
    """An SVG line of the points' values (oldest first); failed checks are red dots,
    errors orange ticks on the floor. `points`: spark_values rows."""
    if not points:
        return format_html('<span class="muted spark-empty">no results yet</span>')
    values = [p["value"] for p in points if p["value"] is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = (high - low) or 1.0
    pad = 3
    step = (width - 2 * pad) / max(len(points) - 1, 1)

    def y(value: float) -> float:
        return round(height - pad - (value - low) / span * (height - 2 * pad), 1)

    line, marks = [], []
    for n, point in enumerate(points):
        x = round(pad + n * step, 1)
        value = point["value"]
        if value is None:
            marks.append((x, height - pad, "spark-error", f"error: {point['error'][:80]}", "rect"))
            continue
        line.append(f"{x},{y(value)}")
        if not point["passed"]:
            marks.append((x, y(value), "spark-failed", f"{_number(value)} (failed)", "circle"))
    last = next((p for p in reversed(points) if p["value"] is not None), None)
    label = f"last {len(points)} results"
    if values:
        label += f", from {_number(min(values))} to {_number(max(values))}"
    if last is not None:
        label += f", latest {_number(last['value'])}"
    shapes = format_html_join(
        "",
        '<{4} class="{2}" fill="{1}" {0}><title>{3}</title></{4}>',
        (
            (
                format_html('cx="{}" cy="{}" r="2.5"', x, my)
                if shape == "circle"
                else format_html('x="{}" y="{}" width="2" height="4"', x - 1, my - 3),
                "#d13b3b" if css == "spark-failed" else "#e07b16",
                css,
                title,
                shape,
            )
            for x, my, css, title, shape in marks
        ),
    )
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="{}"><title>{}</title><polyline fill="none" stroke="#2456d3" '
        'stroke-width="1.5" stroke-linejoin="round" points="{}"/>{}</svg>',
        width,
        height,
        width,
        height,
        label,
        label,
        " ".join(line),
        shapes,
    )
