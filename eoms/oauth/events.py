import uuid
from dataclasses import dataclass

from eoms.core.events import DomainEvent

__all__ = ["ClientRegistered", "ClientDeleted", "ClientSecretRotated", "UserTokensRevoked", "AuthorizationRevoked"]


@dataclass(frozen=True, kw_only=True)
class ClientRegistered(DomainEvent):
    event_type = "oauth.client_registered"
    aggregate_type = "oauth.client"
    id: uuid.UUID
    client_id: str
    grant_type: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ClientSecretRotated(DomainEvent):
    event_type = "oauth.client_secret_rotated"
    aggregate_type = "oauth.client"
    id: uuid.UUID
    client_id: str


@dataclass(frozen=True, kw_only=True)
class ClientDeleted(DomainEvent):
    event_type = "oauth.client_deleted"
    aggregate_type = "oauth.client"
    id: uuid.UUID
    client_id: str


@dataclass(frozen=True, kw_only=True)
class UserTokensRevoked(DomainEvent):
    event_type = "oauth.user_tokens_revoked"
    aggregate_type = "accounts.user"
    id: uuid.UUID
    access_tokens: int
    refresh_tokens: int


@dataclass(frozen=True, kw_only=True)
class AuthorizationRevoked(DomainEvent):
    event_type = "oauth.authorization_revoked"
    aggregate_type = "oauth.client"
    id: uuid.UUID
    client_id: str
    user_id: uuid.UUID
