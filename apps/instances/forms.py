"""Forms of the instance pages: one operation on one instance, and a batch from the list."""

from django import forms
from django.utils.http import url_has_allowed_host_and_scheme

from .actions import ACTIONS, BATCH_ACTIONS
from .operations import BATCH_MAX


class IdsField(forms.Field):
    """Checkbox values: distinct whole-number ids, in the order given."""

    def to_python(self, value):
        values = value if isinstance(value, list | tuple) else ([value] if value else [])
        ids = []
        for raw in values:
            if not str(raw).isdigit():
                raise forms.ValidationError(f"{raw!r} is not an instance id")
            ids.append(int(raw))
        return list(dict.fromkeys(ids))

    def validate(self, value):
        super().validate(value)
        if len(value) > BATCH_MAX:
            raise forms.ValidationError(f"at most {BATCH_MAX} instances in one batch")


class PageForm(forms.Form):
    """A form posted from a page that goes back to it afterwards (`next`)."""

    def next_url(self, request, default: str) -> str:
        """Where to go back to: a local address the page gave, else `default`."""
        target = self.data.get("next", "")
        if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return target
        return default

    def error_list(self) -> list[dict]:
        """Errors as apps.core.errors.ValidationFailed carries them, for field_errors.html."""
        return [
            {"field": field, "message": message}
            for field, messages in self.errors.items()
            for message in messages
        ]


class OperationForm(PageForm):
    action = forms.ChoiceField(choices=[(a.name, a.label) for a in ACTIONS.values()])
    resource_group = forms.CharField(required=False, max_length=64)
    upstream = forms.IntegerField(required=False, min_value=1)

    def clean(self):
        data = super().clean()
        action = data.get("action")
        if action == "change_resource_group" and not data.get("resource_group"):
            self.add_error("resource_group", "choose the resource group to move it to")
        if action == "remove_dependency" and not data.get("upstream"):
            self.add_error("upstream", "name the upstream instance to stop waiting for")
        return data


class BatchForm(PageForm):
    ids = IdsField(
        widget=forms.MultipleHiddenInput,
        error_messages={"required": "select at least one instance"},
    )
    action = forms.ChoiceField(
        choices=[(name, ACTIONS[name].label) for name in BATCH_ACTIONS],
        error_messages={"required": "choose an action"},
    )
    # Set by the confirmation page: apply, do not only preview.
    confirm = forms.BooleanField(required=False)
