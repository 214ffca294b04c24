from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import Application

from ..scopes import SCOPES

__all__ = ["ClientForm"]


class ClientForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=255, widget=forms.TextInput(attrs={"class": "form-control"}))
    grant_type = forms.ChoiceField(
        label=_("Grant type"),
        choices=[
            (Application.GRANT_AUTHORIZATION_CODE, _("Authorization code with PKCE (mobile H5, third-party apps)")),
            (Application.GRANT_CLIENT_CREDENTIALS, _("Client credentials (ERP, CRM, BI integrations)")),
        ],
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    client_type = forms.ChoiceField(
        label=_("Client type"),
        choices=[
            (Application.CLIENT_CONFIDENTIAL, _("Confidential (keeps a secret on a server)")),
            (Application.CLIENT_PUBLIC, _("Public (a browser or phone app: no secret, PKCE only)")),
        ],
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    redirect_uris = forms.CharField(
        label=_("Redirect URIs"),
        required=False,
        help_text=_("One per line; exact match. Needed for the authorization code grant."),
        widget=forms.Textarea(attrs={"class": "form-control", "rows": 3}),
    )
    scopes = forms.MultipleChoiceField(
        label=_("Allowed scopes"),
        choices=[(name, f"{name}: {label}") for name, label in SCOPES.items()],
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
    )
    owner = forms.ModelChoiceField(
        label=_("Owner"),
        queryset=get_user_model().objects.none(),
        required=False,
        help_text=_("Tokens of client credentials act as this user, with their roles. Empty: you."),
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = get_user_model().objects.filter(is_active=True).order_by("username")
