import uuid
from dataclasses import dataclass

from eoms.core.events import DomainEvent

__all__ = [
    "ApiTokenIssued",
    "ApiTokenRevoked",
    "MembershipSet",
    "MembershipRemoved",
    "UserCreated",
    "UserUpdated",
    "OrgUnitCreated",
    "DelegationSet",
    "DelegationEnded",
    "TwoFactorEnabled",
    "TwoFactorDisabled",
    "TwoFactorReset",
    "RecoveryCodesRenewed",
    "RecoveryCodeUsed",
]


@dataclass(frozen=True, kw_only=True)
class ApiTokenIssued(DomainEvent):
    event_type = "accounts.api_token_issued"
    aggregate_type = "accounts.apitoken"
    id: uuid.UUID
    user_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class ApiTokenRevoked(DomainEvent):
    event_type = "accounts.api_token_revoked"
    aggregate_type = "accounts.apitoken"
    id: uuid.UUID
    user_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class MembershipSet(DomainEvent):
    event_type = "accounts.membership_set"
    aggregate_type = "masterdata.project"
    aggregate_field = "project_id"
    project_id: uuid.UUID
    user_id: uuid.UUID
    role: str


@dataclass(frozen=True, kw_only=True)
class MembershipRemoved(DomainEvent):
    event_type = "accounts.membership_removed"
    aggregate_type = "masterdata.project"
    aggregate_field = "project_id"
    project_id: uuid.UUID
    user_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class UserCreated(DomainEvent):
    event_type = "accounts.user_created"
    aggregate_type = "accounts.user"
    id: uuid.UUID
    username: str


@dataclass(frozen=True, kw_only=True)
class OrgUnitCreated(DomainEvent):
    event_type = "accounts.org_unit_created"
    aggregate_type = "accounts.orgunit"
    id: uuid.UUID
    code: str
    parent_id: uuid.UUID | None


@dataclass(frozen=True, kw_only=True)
class UserUpdated(DomainEvent):
    event_type = "accounts.user_updated"
    aggregate_type = "accounts.user"
    id: uuid.UUID
    fields: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class DelegationSet(DomainEvent):
    event_type = "accounts.delegation_set"
    aggregate_type = "accounts.user"
    aggregate_field = "user_id"
    id: uuid.UUID
    user_id: uuid.UUID
    deputy_id: uuid.UUID
    starts_on: str
    ends_on: str


@dataclass(frozen=True, kw_only=True)
class DelegationEnded(DomainEvent):
    event_type = "accounts.delegation_ended"
    aggregate_type = "accounts.user"
    aggregate_field = "user_id"
    id: uuid.UUID
    user_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class TwoFactorEnabled(DomainEvent):
    """A user confirmed an authenticator app (first or replacing one) and got new recovery codes."""

    event_type = "accounts.two_factor_enabled"
    aggregate_type = "accounts.user"
    aggregate_field = "user_id"
    user_id: uuid.UUID
    device_id: uuid.UUID
    replaced: bool


@dataclass(frozen=True, kw_only=True)
class TwoFactorDisabled(DomainEvent):
    event_type = "accounts.two_factor_disabled"
    aggregate_type = "accounts.user"
    aggregate_field = "user_id"
    user_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class TwoFactorReset(DomainEvent):
    """An administrator removed a user's authenticator app and recovery codes (a lost phone)."""

    event_type = "accounts.two_factor_reset"
    aggregate_type = "accounts.user"
    aggregate_field = "user_id"
    user_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class RecoveryCodesRenewed(DomainEvent):
    event_type = "accounts.recovery_codes_renewed"
    aggregate_type = "accounts.user"
    aggregate_field = "user_id"
    user_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class RecoveryCodeUsed(DomainEvent):
    event_type = "accounts.recovery_code_used"
    aggregate_type = "accounts.user"
    aggregate_field = "user_id"
    user_id: uuid.UUID
    remaining: int
