"""Reactions to accounts' events: a user disabled loses every OAuth2 token at once.

(API authentication already refuses a token whose user is inactive; this removes the tokens, so a user
enabled again does not find the old ones working.)"""

from django.contrib.auth import get_user_model

from eoms.core.relay import handles

from .services import revoke_user_tokens

__all__ = ["on_user_updated"]


@handles("accounts.user_updated", name="oauth.user_updated")
def on_user_updated(message) -> None:
    payload = message.payload
    if "is_active" not in payload.get("fields", ()):
        return
    user = get_user_model().objects.filter(pk=payload["id"]).first()
    if user is not None and not user.is_active:
        revoke_user_tokens(actor=None, user=user)
