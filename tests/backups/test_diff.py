"""The restore diff is a pure function of what the target holds and what the archive holds."""

from apps.backups.diff import classify_diff_lines, diff_kind, node_change


def test_added_changed_removed_unchanged_by_key_and_fingerprint():
    current = {"a": "1", "b": "2", "c": "3"}
    archived = {"a": "1", "b": "20", "d": "4"}
    diff = diff_kind(current, archived)
    assert diff.as_dict() == {
        "added": ["d"],
        "changed": ["b"],
        "removed": ["c"],
        "unchanged": ["a"],
    }
    assert diff.to_write == ["d", "b"]


def test_an_inactive_key_comes_back_as_changed_and_is_never_removed():
    # An offline node (None) that the archive holds is brought back; one it lacks is
    # already gone.
    diff = diff_kind({"x": None, "y": None, "z": "9"}, {"x": "1", "z": "9"})
    assert diff.as_dict() == {"added": [], "changed": ["x"], "removed": [], "unchanged": ["z"]}


def test_lists_come_sorted_and_empty_sides_work():
    assert diff_kind({}, {"b": "1", "a": "2"}).added == ["a", "b"]
    assert diff_kind({"b": "1", "a": "2"}, {}).removed == ["a", "b"]


def test_node_change_names_spec_fields_and_diffs_the_script():
    current = {
        "name": "load",
        "type": "shell",
        "schedule": {"type": "recurring", "cron": "0 2 * * *"},
        "content": "echo one\necho two\n",
        "priority": 3,
    }
    archived = {**current, "schedule": {"type": "recurring", "cron": "0 3 * * *"}, "priority": 5}
    archived["content"] = "echo one\necho 2\n"
    change = node_change(
        name="load",
        current_spec=current,
        archived_spec=archived,
        current_version=4,
        archived_version=2,
    )
    assert [(f.field, f.current, f.archived) for f in change.fields] == [
        ("priority", 3, 5),
        ("schedule.cron", "0 2 * * *", "0 3 * * *"),
    ]
    assert "-echo two" in change.script_diff and "+echo 2" in change.script_diff
    assert change.script_diff.startswith("--- load (current v4)\n+++ load (backup v2)")
    kinds = [line["kind"] for line in classify_diff_lines(change.script_diff)]
    assert kinds[:3] == ["head", "head", "hunk"] and "add" in kinds and "del" in kinds


def test_node_change_of_an_http_request_diffs_it_line_by_line():
    before = {"type": "http", "content": {"url": "https://a", "method": "GET", "headers": {}}}
    after = {"type": "http", "content": {"url": "https://b", "method": "GET", "headers": {}}}
    change = node_change(name="ping", current_spec=before, archived_spec=after)
    assert '-  "url": "https://a"' in change.script_diff
    assert '+  "url": "https://b"' in change.script_diff
    assert change.fields == []


def test_an_older_spec_without_newer_keys_reads_as_their_defaults():
    # A spec stored before `resources` existed says the same as one with resources: [].
    change = node_change(
        name="n",
        current_spec={"type": "virtual"},
        archived_spec={"type": "virtual", "resources": []},
    )
    assert change.fields == [] and change.script_diff == ""
