"""The demo's pipelines land in node groups named after their files, as
`opscenter publish FILE` would put them, so the demo shows its groups."""

from apps.demo.services import PIPELINES_DIR, demo_project_setup, pipeline_specs
from apps.nodes.models import Node
from apps.nodes.selectors import node_groups
from apps.nodes.services import nodes_publish


def test_each_pipeline_file_is_a_group(db):
    files = sorted(path.stem for path in PIPELINES_DIR.glob("*.yaml"))
    specs = pipeline_specs()
    assert sorted({spec["group"] for spec in specs}) == files

    project = demo_project_setup()
    owner = project.memberships.get(role="developer").user
    nodes_publish(project=project, env="prod", specs=specs, user=owner, source="cli")
    groups = {row["group"]: row["nodes"] for row in node_groups(Node.objects.all())}
    assert sorted(groups) == files
    assert sum(groups.values()) == len(specs)
    assert Node.objects.get(name="stg_orders").group == "daily_sales"
