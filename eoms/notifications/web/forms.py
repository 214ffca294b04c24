"""The notification settings form: a switch per kind and outside channel, and quiet hours."""

from django import forms
from django.utils.translation import gettext_lazy as _

from ..channels import enabled_channels
from ..models import Channel, NotificationKind, NotificationPreferences

__all__ = ["PreferencesForm", "field_name"]


def field_name(kind: str, channel: str) -> str:
    return f"{kind}__{channel}"


class PreferencesForm(forms.Form):
    quiet_from = forms.TimeField(
        label=_("Quiet from"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time", "class": "form-control"}, format="%H:%M"),
    )
    quiet_until = forms.TimeField(
        label=_("Quiet until"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time", "class": "form-control"}, format="%H:%M"),
    )

    email_digest = forms.BooleanField(
        label=_("Send my email as one daily digest"),
        required=False,
        widget=forms.CheckboxInput(attrs={"class": "form-check-input", "role": "switch"}),
    )

    def __init__(self, *args, preferences: NotificationPreferences, **kwargs):
        # Email always (the channel everyone has), the others once the site has them configured.
        self.outside = [Channel.EMAIL, *(c for c in enabled_channels() if c != Channel.EMAIL)]
        initial = {
            "quiet_from": preferences.quiet_from,
            "quiet_until": preferences.quiet_until,
            "email_digest": preferences.email_digest,
        }
        for kind in NotificationKind.values:
            for channel in self.outside:
                initial[field_name(kind, channel)] = preferences.wants(kind, channel)
        super().__init__(*args, initial=initial, **kwargs)
        for kind, label in NotificationKind.choices:
            for channel in self.outside:
                self.fields[field_name(kind, channel)] = forms.BooleanField(
                    label=label,
                    required=False,
                    widget=forms.CheckboxInput(attrs={"class": "form-check-input", "role": "switch"}),
                )

    def rows(self):
        """(kind label, [(channel label, bound field) per outside channel]) for the template."""
        labels = dict(Channel.choices)
        return [
            (label, [(labels[channel], self[field_name(kind, channel)]) for channel in self.outside])
            for kind, label in NotificationKind.choices
        ]

    def mark_errors(self) -> None:
        for name in self.errors:
            if name in self.fields:
                widget = self.fields[name].widget
                widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()

    def channels(self) -> dict:
        return {
            kind: {channel: bool(self.cleaned_data.get(field_name(kind, channel))) for channel in self.outside}
            for kind in NotificationKind.values
        }
