"""Publish validation: raw NodeSpec dicts in, canonical specs (apps.nodes.specs) out.

A batch is checked as a whole and every error is collected, so one refused publish
shows the developer everything there is to fix. Each error is
{"node": name, "field": "schedule.cron", "message": ...}.

The checks run in two passes: first each spec on its own (fields, types, values),
then the batch against the database (owners, resource groups, datasources, upstream
names, dependency cycles) with a fixed handful of queries whatever the batch size.
"""

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from apps.configuration.models import ResourceGroup
from apps.configuration.runtime import runtime_value_error
from apps.core import dag
from apps.core.errors import ValidationFailed
from apps.instances.schedules import cron_error
from apps.projects.choices import EnvMode
from apps.projects.models import Datasource, Membership, Project
from apps.projects.selectors import projects_visible_to
from apps.resources.selectors import resource_latest_versions

from .choices import Env, NodeStatus, NodeType, ScheduleType
from .models import Node
from .selectors import node_upstream_ids
from .specs import RUNTIME_KEYS, SPEC_DEFAULTS, SPEC_OPTIONAL_KEYS

# No dots in a name: "project_code.node_name" names another project's node.
NAME_RE = re.compile(r"^\w[\w-]*$")
NAME_MAX_LENGTH = 200
GROUP_RE = re.compile(r"^\w[\w.-]*$")
GROUP_MAX_LENGTH = 100
PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# These are the built-in parameters (${bizdate}, ${cyctime}, ${var.NAME}).
RESERVED_PARAMS = {"bizdate", "cyctime", "var"}
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
HTTP_KEYS = ("url", "method", "headers", "body")
SPEC_KEYS = ("name", *SPEC_DEFAULTS, *SPEC_OPTIONAL_KEYS)
SCRIPT_TYPES = {NodeType.SHELL: "script", NodeType.PYTHON: "script", NodeType.SQL: "SQL"}


@dataclass(frozen=True)
class UpstreamRef:
    """One entry of spec["upstream"], resolved."""

    name: str  # as written in the canonical spec ("name" or "project_code.name")
    node_id: int | None  # an already published node; None: a node of this batch


@dataclass
class CheckedNode:
    name: str
    spec: dict  # canonical, ready to be hashed and stored
    upstream: list[UpstreamRef]
    existing: Node | None  # the published node of that name in this project and env
    # spec["resources"]' latest versions, pinned by the node version this publish makes.
    resources: list = field(default_factory=list)  # of apps.resources ResourceVersion


@dataclass
class CheckedBatch:
    project: Project
    env: str
    nodes: list[CheckedNode]
    owners: dict[str, Any]  # username -> user
    resource_groups: dict[str, ResourceGroup]


@dataclass
class _Errors:
    items: list[dict] = field(default_factory=list)

    def add(self, node: str | None, field_name: str, message: str) -> None:
        self.items.append({"node": node, "field": field_name, "message": message})


def group_error(value: Any) -> str | None:
    """Why `value` is not a node group name (None when it is one; "" means no group)."""
    if not isinstance(value, str):
        return f"must be a group name (a string), not {_type_name(value)}"
    value = value.strip()
    if value and (len(value) > GROUP_MAX_LENGTH or not GROUP_RE.match(value)):
        return (
            f"{value[: GROUP_MAX_LENGTH + 20]!r} is not a group name: letters, digits, _, - "
            f"and ., starting with a letter, digit or _, at most {GROUP_MAX_LENGTH}"
        )
    return None


def group_default(specs: Any, group: str) -> Any:
    """The raw specs with `group` for those that name none: the CLI's and the demo's
    default, the pipeline file's name. A spec's own `group` (even "", no group) wins."""
    if not isinstance(specs, list):
        return specs
    return [
        {**spec, "group": group} if isinstance(spec, dict) and spec.get("group") is None else spec
        for spec in specs
    ]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _int_in(raw: dict, key: str, low: int, high: int, label: str, errors: _Errors) -> int | None:
    value = raw[key]
    if not _is_int(value) or not low <= value <= high:
        errors.add(label, key, f"must be a whole number from {low} to {high}, not {value!r}")
        return None
    return value


class _SpecChecker:
    """Checks one raw spec on its own and builds its canonical form."""

    def __init__(self, raw: dict, label: str, *, project: Project, errors: _Errors):
        self.raw = raw
        self.label = label
        self.project = project
        self.errors = errors

    def err(self, field_name: str, message: str) -> None:
        self.errors.add(self.label, field_name, message)

    def given(self, key: str) -> bool:
        # YAML's `key:` with nothing after it is null: read it as "not given".
        return self.raw.get(key) is not None

    def canonical(self) -> dict:
        raw, spec = self.raw, copy.deepcopy(SPEC_DEFAULTS)
        spec["name"] = self.label
        for key in raw:
            if key not in SPEC_KEYS:
                self.err(str(key), f"unknown field; a NodeSpec has: {', '.join(SPEC_KEYS)}")

        if self.given("type"):
            if raw["type"] in NodeType.values:
                spec["type"] = raw["type"]
            else:
                self.err(
                    "type", f"must be one of {', '.join(NodeType.values)}, not {raw['type']!r}"
                )
                spec["type"] = None
        spec["schedule"] = self.schedule()
        spec["upstream"] = self.upstream()
        for key in ("self_dependent", "paused"):
            if self.given(key):
                if isinstance(raw[key], bool):
                    spec[key] = raw[key]
                else:
                    self.err(key, f"must be true or false, not {raw[key]!r}")
        for key in ("owner", "resource_group"):
            if self.given(key):
                if isinstance(raw[key], str) and raw[key].strip():
                    spec[key] = raw[key].strip()
                else:
                    self.err(key, f"must be a name, not {raw[key]!r}")
                    spec[key] = None
        if self.given("priority"):
            spec["priority"] = _int_in(raw, "priority", 1, 5, self.label, self.errors)
        # Runtime settings (SPEC 9): not given, the project's or the global ones apply.
        for key in RUNTIME_KEYS:
            if self.given(key):
                message = runtime_value_error(key, raw[key])
                if message:
                    self.err(key, message)
                else:
                    spec[key] = raw[key]
        if self.given("cpu"):
            if _is_number(raw["cpu"]) and raw["cpu"] > 0:
                spec["cpu"] = raw["cpu"]
            else:
                self.err("cpu", f"must be a positive number of cores, not {raw['cpu']!r}")
        if self.given("memory_mb"):
            if _is_int(raw["memory_mb"]) and raw["memory_mb"] > 0:
                spec["memory_mb"] = raw["memory_mb"]
            else:
                self.err(
                    "memory_mb", f"must be a positive whole number of MiB, not {raw['memory_mb']!r}"
                )
        if self.given("description"):
            if isinstance(raw["description"], str):
                spec["description"] = raw["description"]
            else:
                self.err("description", f"must be a string, not {_type_name(raw['description'])}")
        if self.given("group"):
            problem = group_error(raw["group"])
            if problem:
                self.err("group", problem)
            elif raw["group"].strip():  # no group: no key (SPEC_OPTIONAL_KEYS)
                spec["group"] = raw["group"].strip()
        spec["params"] = self.params()
        if resources := self.resources():  # none: no key (SPEC_OPTIONAL_KEYS)
            spec["resources"] = resources
        spec["content"] = self.content(spec["type"])
        spec["datasource"] = self.datasource(spec["type"])
        return spec

    def schedule(self) -> dict:
        value = self.raw.get("schedule")
        if isinstance(value, str):  # shorthand: a cron expression means recurring
            value = {"type": ScheduleType.RECURRING, "cron": value}
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.err("schedule", f"must be an object {{type, cron}}, not {_type_name(value)}")
            return {"type": None, "cron": ""}
        for key in value:
            if key not in ("type", "cron"):
                self.err(f"schedule.{key}", "unknown field; a schedule has: type, cron")
        kind = value.get("type") or ScheduleType.RECURRING
        if kind not in ScheduleType.values:
            self.err(
                "schedule.type", f"must be one of {', '.join(ScheduleType.values)}, not {kind!r}"
            )
            return {"type": None, "cron": ""}
        cron = value.get("cron")
        if kind == ScheduleType.RECURRING:
            problem = cron_error(cron)
            if problem:
                self.err("schedule.cron", problem)
                return {"type": kind, "cron": ""}
            return {"type": kind, "cron": " ".join(cron.split())}
        if cron not in (None, ""):
            self.err("schedule.cron", f"only recurring nodes have a cron; this one is {kind}")
        return {"type": kind, "cron": ""}

    def upstream(self) -> list[str]:
        value = self.raw.get("upstream")
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.err("upstream", f"must be a list of node names, not {_type_name(value)}")
            return []
        names: list[str] = []
        for index, item in enumerate(value):
            where = f"upstream[{index}]"
            if not isinstance(item, str) or not item.strip():
                self.err(where, f"must be a node name or project_code.node_name, not {item!r}")
                continue
            name = item.strip()
            code, dot, local = name.partition(".")
            if dot and code == self.project.code:
                name = local  # this project, named in full
            if name == self.label:
                self.err(
                    where,
                    "a node cannot be its own upstream; self_dependent: true makes it wait "
                    "for its previous cycle",
                )
            elif name in names:
                self.err(where, f"{name!r} is listed twice")
            else:
                names.append(name)
        return names

    def resources(self) -> list[str]:
        value = self.raw.get("resources")
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.err("resources", f"must be a list of resource names, not {_type_name(value)}")
            return []
        names: list[str] = []
        for index, item in enumerate(value):
            where = f"resources[{index}]"
            if not isinstance(item, str) or not item.strip():
                self.err(where, f"must be the name of a resource of this project, not {item!r}")
            elif item.strip() in names:
                self.err(where, f"{item.strip()!r} is listed twice")
            else:
                names.append(item.strip())
        return names

    def params(self) -> dict:
        value = self.raw.get("params")
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.err("params", f"must be an object {{name: default}}, not {_type_name(value)}")
            return {}
        params = {}
        for name, default in value.items():
            where = f"params.{name}"
            if not isinstance(name, str) or not PARAM_NAME_RE.match(name):
                self.err(
                    where, "a parameter name is letters, digits and _, not starting with a digit"
                )
            elif name in RESERVED_PARAMS:
                self.err(where, f"${{{name}}} is built in; choose another name")
            elif isinstance(default, bool):
                params[name] = "true" if default else "false"
            elif default is None:
                params[name] = ""
            elif isinstance(default, str | int | float):
                params[name] = str(default)
            else:
                self.err(
                    where, f"a default must be a string or a number, not {_type_name(default)}"
                )
        return params

    def content(self, node_type: str | None) -> str | dict:
        value = self.raw.get("content")
        if node_type == NodeType.HTTP:
            return self.http_content(value)
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.err("content", f"must be a script (a string), not {_type_name(value)}")
            return ""
        if node_type in SCRIPT_TYPES and not value.strip():
            self.err("content", f"a {node_type} node needs its {SCRIPT_TYPES[node_type]}")
        return value

    def http_content(self, value: Any) -> dict:
        request = {"url": "", "method": "GET", "headers": {}, "body": None}
        if isinstance(value, str):
            value = {"url": value}
        if not isinstance(value, dict):
            self.err(
                "content", "an http node needs a URL or an object {url, method, headers, body}"
            )
            return request
        for key in value:
            if key not in HTTP_KEYS:
                self.err(
                    f"content.{key}", f"unknown field; an HTTP request has: {', '.join(HTTP_KEYS)}"
                )
        url = value.get("url")
        if not isinstance(url, str) or not url.strip():
            self.err("content.url", "an http node needs a URL")
        elif not url.strip().startswith(("http://", "https://", "${")):
            self.err("content.url", f"must start with http:// or https://, not {url!r}")
        else:
            request["url"] = url.strip()
        method = value.get("method") or "GET"
        if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
            self.err("content.method", f"must be one of {', '.join(HTTP_METHODS)}, not {method!r}")
        else:
            request["method"] = method.upper()
        headers = value.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in headers.values()
        ):
            self.err("content.headers", "must be an object of header names to string values")
        else:
            request["headers"] = {str(k): str(v) for k, v in headers.items()}
        body = value.get("body")
        if body is not None and not isinstance(body, str | dict | list):
            self.err(
                "content.body", f"must be a string or JSON (object or list), not {_type_name(body)}"
            )
        else:
            request["body"] = body
        return request

    def datasource(self, node_type: str | None) -> str | None:
        value = self.raw.get("datasource")
        if node_type == NodeType.SQL:
            if not isinstance(value, str) or not value.strip():
                self.err("datasource", "a sql node needs the name of a datasource of this project")
                return None
            return value.strip()
        if value is not None and node_type is not None:
            self.err("datasource", f"only sql nodes use a datasource; this one is {node_type}")
        return None


def validate_batch(*, project: Project, env: str, specs: Any, user) -> CheckedBatch:
    """Check a batch of raw NodeSpecs for publishing into `project`/`env` by `user`.

    Raises ValidationFailed listing every error; otherwise answers the canonical specs
    with their references resolved.
    """
    errors = _Errors()
    if env not in Env.values:
        errors.add(None, "env", f"must be one of {', '.join(Env.values)}, not {env!r}")
    elif env == Env.DEV and project.env_mode != EnvMode.DEV_PROD:
        errors.add(
            None, "env", f"project {project.code!r} is prod only (env_mode basic); publish to prod"
        )
    if not isinstance(specs, list) or not specs:
        errors.add(None, "nodes", "must be a non-empty list of NodeSpecs")
        _raise(errors)

    # Pass 1: each spec on its own.
    checked: list[tuple[str, dict]] = []  # (name, canonical spec), first of each name only
    seen: set[str] = set()
    for index, raw in enumerate(specs):
        label = f"nodes[{index}]"
        if not isinstance(raw, dict):
            errors.add(label, "", f"a NodeSpec must be an object, not {_type_name(raw)}")
            continue
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.add(label, "name", "a node needs a name")
        elif not NAME_RE.match(name.strip()) or len(name.strip()) > NAME_MAX_LENGTH:
            errors.add(
                label,
                "name",
                f"{name!r} is not a node name: letters, digits, _ and -, at most {NAME_MAX_LENGTH}",
            )
        else:
            label = name.strip()
        spec = _SpecChecker(raw, label, project=project, errors=errors).canonical()
        if label.startswith("nodes["):
            continue
        if label in seen:
            errors.add(label, "name", f"{label!r} appears more than once in the batch")
            continue
        seen.add(label)
        checked.append((label, spec))
    if any(e["field"] == "env" for e in errors.items):
        _raise(errors)  # every name below would be looked up in the wrong place

    # Pass 2: the batch against the database.
    batch_names = {name for name, _ in checked}
    local_upstream = {u for _, spec in checked for u in spec["upstream"] if "." not in u}
    existing_by_name = {
        node.name: node
        for node in Node.objects.filter(
            project=project, env=env, name__in=batch_names | local_upstream
        ).select_related("current_version", "owner")
    }
    for name, spec in checked:
        if spec["owner"] == "":  # not given: keep the node's owner, or the publisher
            existing = existing_by_name.get(name)
            spec["owner"] = existing.owner.username if existing else user.get_username()

    owners = _owners(project, checked, errors)
    groups = _resource_groups(checked, errors)
    _datasources(project, checked, errors)
    resources = _resources(project, checked, errors)
    foreign = _foreign_upstream(project, env, checked, user)

    nodes: list[CheckedNode] = []
    for name, spec in checked:
        refs: list[UpstreamRef] = []
        for index, upstream in enumerate(spec["upstream"]):
            where = f"upstream[{index}]"
            if "." in upstream:
                target = foreign.get(upstream)
                if target is None or target.status != NodeStatus.ONLINE:
                    code = upstream.partition(".")[0]
                    errors.add(
                        name,
                        where,
                        f"unknown upstream {upstream!r}: no online node of that name in "
                        f"project {code!r}",
                    )
                    continue
                refs.append(UpstreamRef(upstream, target.id))
            elif upstream in batch_names:
                refs.append(UpstreamRef(upstream, None))
            else:
                target = existing_by_name.get(upstream)
                if target is None:
                    errors.add(
                        name,
                        where,
                        f"unknown upstream {upstream!r}: neither in this batch nor published in "
                        f"{project.code}/{env}",
                    )
                    continue
                if target.status != NodeStatus.ONLINE:
                    errors.add(name, where, f"upstream {upstream!r} is offline")
                    continue
                refs.append(UpstreamRef(upstream, target.id))
        nodes.append(
            CheckedNode(
                name,
                spec,
                refs,
                existing_by_name.get(name),
                [resources[r] for r in spec.get("resources", ()) if r in resources],
            )
        )

    _cycles(project, env, nodes, errors)
    _raise(errors)
    return CheckedBatch(
        project=project, env=env, nodes=nodes, owners=owners, resource_groups=groups
    )


def _raise(errors: _Errors) -> None:
    if errors.items:
        count = len(errors.items)
        raise ValidationFailed(
            f"nothing was published: {count} error{'s' if count != 1 else ''}", errors.items
        )


def _owners(project: Project, checked: list[tuple[str, dict]], errors: _Errors) -> dict:
    wanted = {spec["owner"] for _, spec in checked if spec["owner"]}
    users = {
        u.username: u for u in get_user_model().objects.filter(username__in=wanted, is_active=True)
    }
    members = set(
        Membership.objects.filter(project=project, user__username__in=wanted).values_list(
            "user__username", flat=True
        )
    )
    for name, spec in checked:
        owner = spec["owner"]
        if not owner:
            continue
        if owner not in users:
            errors.add(name, "owner", f"unknown owner {owner!r}: no active user of that name")
        elif owner not in members and not users[owner].is_superuser:
            errors.add(
                name, "owner", f"owner {owner!r} is not a member of project {project.code!r}"
            )
    return users


def _resource_groups(checked: list[tuple[str, dict]], errors: _Errors) -> dict:
    wanted = {spec["resource_group"] for _, spec in checked if spec["resource_group"]}
    groups = {g.name: g for g in ResourceGroup.objects.filter(name__in=wanted)}
    for name, spec in checked:
        group = spec["resource_group"]
        if group and group not in groups:
            errors.add(name, "resource_group", f"unknown resource group {group!r}")
    return groups


def _datasources(project: Project, checked: list[tuple[str, dict]], errors: _Errors) -> None:
    wanted = {spec["datasource"] for _, spec in checked if spec["datasource"]}
    known = set(
        Datasource.objects.filter(project=project, name__in=wanted).values_list("name", flat=True)
    )
    for name, spec in checked:
        source = spec["datasource"]
        if source and source not in known:
            errors.add(
                name, "datasource", f"unknown datasource {source!r} in project {project.code!r}"
            )


def _resources(project: Project, checked: list[tuple[str, dict]], errors: _Errors) -> dict:
    """name -> latest version of every resource the batch names; an unknown name is an
    error naming the node and its place in `resources`."""
    wanted = {r for _, spec in checked for r in spec.get("resources", ())}
    latest = resource_latest_versions(project, wanted, lock=True) if wanted else {}
    for name, spec in checked:
        for index, resource in enumerate(spec.get("resources", ())):
            if resource not in latest:
                errors.add(
                    name,
                    f"resources[{index}]",
                    f"unknown resource {resource!r} in project {project.code!r}: upload it first",
                )
    return latest


def _foreign_upstream(project: Project, env: str, checked, user) -> dict[str, Node]:
    """Nodes of other projects named "code.name", by that full name.

    They resolve in the other project's same env; a prod-only project answers for dev
    from prod. Projects the publisher cannot see do not exist for this lookup."""
    wanted: dict[str, set[str]] = {}
    for _, spec in checked:
        for upstream in spec["upstream"]:
            code, dot, name = upstream.partition(".")
            if dot:
                wanted.setdefault(code, set()).add(name)
    if not wanted:
        return {}
    condition = Q()
    for other in projects_visible_to(user).filter(code__in=wanted).exclude(pk=project.pk):
        other_env = env if other.env_mode == EnvMode.DEV_PROD else Env.PROD
        condition |= Q(project=other, env=other_env, name__in=wanted[other.code])
    if not condition:
        return {}
    return {
        f"{node.project.code}.{node.name}": node
        for node in Node.objects.filter(condition).select_related("project")
    }


def _cycles(project: Project, env: str, nodes: list[CheckedNode], errors: _Errors) -> None:
    """Report each dependency cycle the batch would make, naming its path.

    The published graph has no cycle, so any new one passes through a batch node. The
    graph is the batch's new edges plus the published edges of everything they reach,
    loaded one depth level per query (apps.core.dag walks it and finds the cycles)."""
    batch_key = {n.name: ("batch", n.name) for n in nodes}
    id_key = {n.existing.id: batch_key[n.name] for n in nodes if n.existing}
    graph: dict[tuple, list[tuple]] = {}
    reached: set[int] = set()

    def key_of(node_id: int) -> tuple:
        return id_key.get(node_id, ("node", node_id))

    for n in nodes:
        edges = []
        for ref in n.upstream:
            if ref.node_id is None:
                edges.append(batch_key[ref.name])
            else:
                edges.append(key_of(ref.node_id))
                if ref.node_id not in id_key:
                    reached.add(ref.node_id)
        graph[batch_key[n.name]] = edges

    def published_upstream(ids: list[int]) -> dict[int, list[int]]:
        upstream = node_upstream_ids(ids)
        for node_id in ids:
            graph[("node", node_id)] = [key_of(u) for u in upstream.get(node_id, ())]
        return upstream

    # A batch node's published edges give way to its new ones: the walk stops at it.
    dag.ancestors(reached, published_upstream, stop=id_key.__contains__)

    order = {batch_key[n.name]: index for index, n in enumerate(nodes)}
    cycles = dag.find_cycles(graph, starts=[batch_key[n.name] for n in nodes])
    if not cycles:
        return
    published = {k[1] for cycle in cycles for k in cycle if k[0] == "node"}
    names = {
        node.id: node.name
        if (node.project_id, node.env) == (project.id, env)
        else f"{node.project.code}.{node.name}"
        for node in Node.objects.filter(id__in=published).select_related("project")
    }
    reported = set()
    for cycle in cycles:
        # Start at the batch node that comes first in the batch, so one cycle reads one way.
        start = min((k for k in cycle if k in order), key=order.__getitem__)
        at = cycle.index(start)
        path = cycle[at:] + cycle[:at]
        if tuple(path) in reported:
            continue
        reported.add(tuple(path))
        shown = [k[1] if k[0] == "batch" else names.get(k[1], f"#{k[1]}") for k in path]
        errors.add(
            start[1],
            "upstream",
            f"dependency cycle: {' -> '.join([*shown, shown[0]])} (each depends on the next)",
        )
