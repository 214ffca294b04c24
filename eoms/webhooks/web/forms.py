from django import forms
from django.utils.translation import gettext_lazy as _

from ..selectors import known_event_types

__all__ = ["SubscriptionForm", "PauseForm"]


class SubscriptionForm(forms.Form):
    target_url = forms.CharField(
        label=_("Target URL"),
        max_length=500,
        help_text=_("An https address that resolves to a public IP address."),
        widget=forms.URLInput(attrs={"class": "form-control", "placeholder": "https://"}),
    )
    description = forms.CharField(
        label=_("Description"), max_length=200, required=False, widget=forms.TextInput(attrs={"class": "form-control"})
    )
    event_types = forms.MultipleChoiceField(
        label=_("Events"), widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["event_types"].choices = [("*", _("All events"))] + [(t, t) for t in known_event_types()]


class PauseForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=300, required=False)
