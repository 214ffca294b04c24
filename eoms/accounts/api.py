"""Accounts API: who am I, and my personal API tokens."""

import uuid
from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema

from eoms.core.api import ProblemSchema

from . import selectors, services
from .auth import Session

router = Router(tags=["accounts"])


class MeOut(Schema):
    id: uuid.UUID
    username: str
    display_name: str
    email: str
    roles: list[str]
    org_unit: str | None


class TokenIn(Schema):
    name: str
    days: int | None = None


class TokenOut(Schema):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreatedOut(TokenOut):
    token: str


@router.get("/me", response=MeOut, summary="The signed-in user and their roles")
def me(request: HttpRequest):
    user = request.auth
    return MeOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name or user.username,
        email=user.email,
        roles=sorted(selectors.roles_of(user)),
        org_unit=str(user.org_unit) if user.org_unit_id else None,
    )


@router.get("/tokens", response=list[TokenOut], summary="My API tokens")
def list_tokens(request: HttpRequest):
    return list(selectors.list_api_tokens(actor=request.auth))


@router.post(
    "/tokens",
    # Only a signed-in page session (past its second factor) makes tokens: a token cannot make more.
    auth=[Session()],
    response={201: TokenCreatedOut, 422: ProblemSchema},
    summary="Create an API token (from the signed-in page session only); the secret is shown only in this response",
)
def create_token(request: HttpRequest, payload: TokenIn):
    token, secret = services.issue_api_token(actor=request.auth, name=payload.name, days=payload.days)
    return 201, TokenCreatedOut(**TokenOut.from_orm(token).dict(), token=secret)


@router.delete("/tokens/{token_id}", response={204: None, 404: ProblemSchema}, summary="Revoke an API token")
def revoke_token(request: HttpRequest, token_id: uuid.UUID):
    services.revoke_api_token(actor=request.auth, token_id=token_id)
    return 204, None
