"""Rules built directly (the API's validation has its own tests)."""

from apps.quality.models import FieldRule


def rule_make(node, datasource, **fields) -> FieldRule:
    values = dict(
        project=node.project,
        node=node,
        datasource=datasource,
        table="orders",
        metric="row_count",
        operator=">",
        threshold=0,
    )
    channels = fields.pop("channels", [])
    values.update(fields)
    rule = FieldRule.objects.create(**values)
    rule.channels.set(channels)
    return rule
