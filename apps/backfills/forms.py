"""The New backfill form: what the page asks, checked field by field before the plan or
the run is made. Nodes are limited to those the user may see."""

import datetime

from django import forms

from apps.nodes.models import Node
from apps.nodes.selectors import nodes_visible_to

from .services import MAX_DATES, MAX_PARALLELISM

DOWNSTREAM_CHOICES = [
    ("none", "None: only the chosen nodes"),
    ("all", "All downstream nodes"),
    ("subset", "A chosen subset of the downstream nodes"),
]
ORDER_CHOICES = [
    ("serial", "Serial: date by date"),
    ("parallel", "Parallel: several dates at once"),
]
DIRECTION_CHOICES = [("ascending", "Oldest date first"), ("descending", "Newest date first")]


class BackfillForm(forms.Form):
    nodes = forms.ModelMultipleChoiceField(
        queryset=Node.objects.none(),
        error_messages={
            "required": "choose at least one node",
            "invalid_choice": "node %(value)s does not exist",
            "invalid_pk_value": "%(pk)s is not a node id",
        },
    )
    downstream = forms.ChoiceField(choices=DOWNSTREAM_CHOICES, initial="none")
    downstream_nodes = forms.ModelMultipleChoiceField(
        queryset=Node.objects.none(),
        required=False,
        error_messages={
            "invalid_choice": "node %(value)s does not exist",
            "invalid_pk_value": "%(pk)s is not a node id",
        },
    )
    start_date = forms.DateField(
        input_formats=["%Y-%m-%d"],
        error_messages={"required": "the first biz date", "invalid": "a date as YYYY-MM-DD"},
    )
    end_date = forms.DateField(
        input_formats=["%Y-%m-%d"],
        error_messages={"required": "the last biz date", "invalid": "a date as YYYY-MM-DD"},
    )
    order = forms.ChoiceField(choices=ORDER_CHOICES, initial="serial")
    parallelism = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PARALLELISM,
        error_messages={
            "invalid": "a whole number",
            "min_value": "at least 1",
            "max_value": f"at most {MAX_PARALLELISM}",
        },
    )
    direction = forms.ChoiceField(choices=DIRECTION_CHOICES, initial="ascending")
    ignore_schedule_time = forms.BooleanField(required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        visible = nodes_visible_to(user).order_by("project__code", "name")
        self.fields["nodes"].queryset = visible
        self.fields["downstream_nodes"].queryset = visible

    def clean(self):
        data = super().clean()
        start, end = data.get("start_date"), data.get("end_date")
        if start and end:
            if end < start:
                self.add_error("end_date", "the last biz date is before the first")
            elif (end - start).days + 1 > MAX_DATES:
                self.add_error("end_date", f"a run covers at most {MAX_DATES} dates")
        roots = list(data.get("nodes") or [])
        if len({n.project_id for n in roots}) > 1:
            self.add_error("nodes", "the nodes of one backfill belong to one project")
        if data.get("order") == "serial":
            data["parallelism"] = 1
        elif data.get("order") == "parallel" and not data.get("parallelism"):
            if "parallelism" not in self.errors:
                self.add_error("parallelism", "how many dates may run at once")
        if data.get("downstream") == "subset" and not data.get("downstream_nodes"):
            self.add_error("downstream_nodes", "choose the downstream nodes to include")
        return data

    # --- what the services take ------------------------------------------------------

    @property
    def roots(self) -> list[Node]:
        return list(self.cleaned_data["nodes"])

    @property
    def downstream_arg(self) -> str | list[int]:
        """ "none", "all", or the ids of the downstream nodes chosen."""
        choice = self.cleaned_data["downstream"]
        if choice == "subset":
            return sorted(n.id for n in self.cleaned_data["downstream_nodes"])
        return choice

    @property
    def plan_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "nodes": self.roots,
            "downstream": self.downstream_arg,
            "start": data["start_date"],
            "end": data["end_date"],
            "order": data["order"],
            "parallelism": data["parallelism"],
            "descending": data["direction"] == "descending",
        }

    def error_list(self) -> list[dict]:
        """The errors as partials/field_errors.html shows them, each naming its field."""
        return [
            {"field": "" if field == "__all__" else field, "message": message}
            for field, messages in self.errors.items()
            for message in messages
        ]


def default_dates(today: datetime.date) -> tuple[datetime.date, datetime.date]:
    """The last week of biz dates up to yesterday: the usual size of a repair."""
    yesterday = today - datetime.timedelta(days=1)
    return yesterday - datetime.timedelta(days=6), yesterday
