import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.models import OperationLog
from apps.nodes.models import Node

from .helpers import spec

PIPELINE_YAML = """\
# a daily chain
- name: extract
  type: shell
  schedule: {type: recurring, cron: "0 2 * * *"}
  content: |
    echo extracting ${bizdate}
- name: load
  type: virtual
  schedule: {cron: "0 3 * * *"}
  upstream: [extract]
  owner: dave
"""


def opscenter(*args) -> str:
    out = StringIO()
    call_command("opscenter", *args, stdout=out)
    return out.getvalue()


def test_publish_a_yaml_file(project, users, tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE_YAML)
    out = opscenter("publish", str(path), "--project", "acme")
    assert "created 2: extract, load" in out
    extract = Node.objects.get(name="extract")
    assert extract.owner.username == "root"  # the first superuser, when --as is not given
    assert extract.current_version.spec["content"] == "echo extracting ${bizdate}\n"
    assert Node.objects.get(name="load").current_version.upstream_ids == [extract.id]
    assert OperationLog.objects.get(action="publish").source == "cli"

    out = opscenter("publish", str(path), "--project", "acme")
    assert "unchanged 2: extract, load" in out
    assert "created 0" in out


def test_publish_a_json_file_as_a_user(project, users, tmp_path):
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps({"nodes": [spec("a"), spec("b", upstream=["a"])]}))
    out = opscenter("publish", str(path), "--project", "acme", "--as", "dave", "--note", "v1")
    assert "created 2: a, b" in out
    node = Node.objects.get(name="a")
    assert node.owner.username == "dave"
    assert node.current_version.note == "v1"


def test_publish_errors_list_every_error(project, users, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            [
                spec("a", upstream=["b"]),
                spec("b", upstream=["a"]),
                spec("c", resource_group="gpu"),
            ]
        )
    )
    with pytest.raises(CommandError) as caught:
        opscenter("publish", str(path), "--project", "acme")
    message = str(caught.value)
    assert "nothing was published: 2 errors" in message
    assert "a: upstream: dependency cycle: a -> b -> a" in message
    assert "c: resource_group: unknown resource group 'gpu'" in message
    assert not Node.objects.exists()


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("bad.yaml", "- name: a\n  schedule: {cron: [\n", "not valid YAML"),
        ("bad.json", "[{", "not valid JSON"),
        ("scalar.yaml", "just text\n", "expected a list of NodeSpecs"),
        ("other.yaml", "items: []\n", "one key, nodes"),
    ],
)
def test_unreadable_files_are_explained(project, users, tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CommandError, match=words) as caught:
        opscenter("publish", str(path), "--project", "acme")
    assert name in str(caught.value)


def test_bad_arguments_are_explained(project, users, tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text("- name: a\n  type: virtual\n  schedule: '0 2 * * *'\n")
    with pytest.raises(CommandError, match="no such file"):
        opscenter("publish", str(tmp_path / "missing.yaml"), "--project", "acme")
    with pytest.raises(CommandError, match="unknown project 'nosuch'"):
        opscenter("publish", str(path), "--project", "nosuch")
    with pytest.raises(CommandError, match="unknown user 'ghost'"):
        opscenter("publish", str(path), "--project", "acme", "--as", "ghost")
    with pytest.raises(CommandError, match="needs the developer role"):
        opscenter("publish", str(path), "--project", "acme", "--as", "vera")
    get_user_model().objects.filter(is_superuser=True).update(is_superuser=False)
    with pytest.raises(CommandError, match="no superuser"):
        opscenter("publish", str(path), "--project", "acme")
    assert not Node.objects.exists()
