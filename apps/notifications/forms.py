"""The channel form of the pages: the fields each kind asks for (declared by its
transport), read from a POST into the service's `config` and `secrets`, and shown back
with the service's errors next to the field they name.

Inputs are named as the API's fields ("config.url", "secrets.secret"), so an error the
service names lands on its input without a table of aliases. Secret inputs never carry
the stored value: they say whether one is set, an empty input keeps it, and a checkbox
removes it.
"""

from dataclasses import dataclass, field

from .choices import ChannelKind
from .models import Channel
from .transports import FieldErrors, FormField, transport_for


@dataclass
class BoundField:
    input_name: str
    spec: FormField
    value: str = ""
    is_set: bool = False  # a stored secret
    errors: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def widget(self) -> str:
        return self.spec.widget

    @property
    def help(self) -> str:
        return self.spec.help

    @property
    def choices(self) -> tuple[str, ...]:
        return self.spec.choices

    @property
    def required(self) -> bool:
        return self.spec.required

    @property
    def input_id(self) -> str:
        return "ch-" + self.input_name.replace(".", "-")


def error_key(field_name: str) -> str:
    """config.to.2 -> config.to; config.headers.X-Key -> config.headers; name -> name."""
    parts = field_name.split(".")
    return ".".join(parts[:2]) if parts[0] in ("config", "secrets") else parts[0]


def errors_by_field(errors: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for error in errors:
        found.setdefault(error_key(error.get("field", "")), []).append(error["message"])
    return found


def _shown(spec: FormField, value) -> str:
    """A stored config value as its input shows it."""
    if value in (None, ""):
        return ""
    if spec.widget == "lines":
        return "\n".join(value) if isinstance(value, list) else str(value)
    if spec.widget == "headers":
        if isinstance(value, dict):
            return "\n".join(f"{name}: {text}" for name, text in value.items())
        return str(value)
    return str(value)


def kind_fields(
    kind: str,
    *,
    channel: Channel | None = None,
    data=None,
    errors: dict[str, list[str]] | None = None,
) -> list[BoundField]:
    """The inputs of one kind: values from the POST `data`, else from the channel."""
    if kind not in ChannelKind.values:
        return []
    errors = errors or {}
    same_kind = channel is not None and channel.kind == kind
    config = (channel.config or {}) if same_kind else {}
    stored_secrets = set(channel.secrets_set) if same_kind else set()
    bound = []
    for spec in transport_for(kind).form_fields:
        prefix = "secrets" if spec.secret else "config"
        name = f"{prefix}.{spec.name}"
        if spec.secret:
            value = ""  # never the stored secret
        elif data is not None:
            value = data.get(name, "")
        else:
            value = _shown(spec, config.get(spec.name))
            if spec.widget == "select" and not value and spec.choices:
                value = spec.choices[0]
        bound.append(
            BoundField(
                input_name=name,
                spec=spec,
                value=value,
                is_set=spec.name in stored_secrets,
                errors=errors.get(name, []),
            )
        )
    return bound


def read_post(kind: str, data, errors: FieldErrors) -> tuple[dict, dict]:
    """The `config` and `secrets` a POST of the form says, for the service. Lines that
    cannot be read (a header without a colon) go to `errors`."""
    config: dict = {}
    secrets: dict = {}
    if kind not in ChannelKind.values:
        return config, secrets
    for spec in transport_for(kind).form_fields:
        if spec.secret:
            value = data.get(f"secrets.{spec.name}", "")
            if data.get(f"secrets.{spec.name}.clear"):
                secrets[spec.name] = None
            elif value:
                secrets[spec.name] = value
            continue
        raw = data.get(f"config.{spec.name}", "")
        if spec.widget == "lines":
            items = [item.strip() for line in raw.splitlines() for item in line.split(",")]
            value = [item for item in items if item]
        elif spec.widget == "headers":
            value = {}
            for number, line in enumerate(raw.splitlines(), start=1):
                if not line.strip():
                    continue
                name, colon, text = line.partition(":")
                if not colon or not name.strip():
                    errors.add(f"config.{spec.name}", f"line {number}: write it as Name: value")
                    continue
                value[name.strip()] = text.strip()
        elif spec.widget == "template":
            value = raw.strip()
        else:
            value = raw.strip()
        if value not in ("", [], {}):
            config[spec.name] = value
    return config, secrets
