"""Every write about users, memberships and API tokens; each audited, each in one transaction."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from eoms.core import audit
from eoms.core.errors import PermissionDenied, ValidationFailed
from eoms.core.events import emit
from eoms.core.rows import Select

from . import events
from .errors import DelegationNotFound, TokenNotFound
from .models import ApiToken, OrgUnit, ProjectMembership, User
from .roles import ProjectRole, Role
from .selectors import has_role

__all__ = [
    "create_user",
    "set_membership",
    "remove_membership",
    "issue_api_token",
    "revoke_api_token",
    "authenticate_api_token",
    "active_api_token",
    "create_org_unit",
    "TOKEN_PREFIX",
    "set_delegation",
    "end_delegation",
    "DelegationInvalid",
    "DelegationNotFound",
    "record_sign_in_failure",
]

TOKEN_PREFIX = "eoms_"


def _require_admin(actor) -> None:
    if not has_role(actor, Role.ADMIN):
        raise PermissionDenied(gettext("Only an administrator may do this."))


@transaction.atomic
def create_user(
    *,
    actor,
    username: str,
    password: str,
    display_name: str = "",
    email: str = "",
    roles: list[str] | tuple[str, ...] = (),
    org_unit: OrgUnit | None = None,
    phone: str = "",
    is_staff: bool = False,
) -> User:
    """Create a user with company roles. `actor` None is the system (demo loader, createsuperuser)."""
    if actor is not None:
        _require_admin(actor)
    unknown = [r for r in roles if r not in Role.values]
    if unknown:
        raise ValidationFailed(
            errors=[
                {"field": "roles", "message": gettext("Unknown role(s): %(roles)s") % {"roles": ", ".join(unknown)}}
            ]
        )
    if User.objects.filter(username=username).exists():
        raise ValidationFailed(errors=[{"field": "username", "message": gettext("This username is taken.")}])
    user = User(
        username=username,
        display_name=display_name,
        email=email,
        org_unit=org_unit,
        phone=phone,
        is_staff=is_staff or Role.ADMIN in roles,
    )
    user.set_password(password)
    user.save()
    if roles:
        user.groups.set(Group.objects.filter(name__in=roles))
    emit(
        events.UserCreated(id=user.id, username=username),
        actor=actor,
        object_repr=username,
        changes={"roles": sorted(roles), "org_unit": str(org_unit) if org_unit else None},
    )
    return user


@transaction.atomic
def create_org_unit(
    *, actor, code: str, name: str, parent: OrgUnit | None = None, manager: User | None = None
) -> OrgUnit:
    """A department under `parent` (None: a top-level unit). Codes are unique."""
    if actor is not None:
        _require_admin(actor)
    code, name = (code or "").strip(), (name or "").strip()
    errors = [
        {"field": f, "message": gettext("This field is required.")}
        for f, v in (("code", code), ("name", name))
        if not v
    ]
    if code and OrgUnit.objects.filter(code=code).exists():
        errors.append({"field": "code", "message": gettext("This code is taken.")})
    if errors:
        raise ValidationFailed(errors=errors)
    unit = OrgUnit.objects.create(code=code[:40], name=name[:100], parent=parent, manager=manager)
    emit(
        events.OrgUnitCreated(id=unit.id, code=unit.code, parent_id=parent.id if parent else None),
        actor=actor,
        object_repr=unit.name,
        changes={"code": unit.code, "name": unit.name, "parent": str(parent) if parent else None},
    )
    return unit


@transaction.atomic
def set_membership(*, actor, user: User, project, role: str = ProjectRole.VIEWER) -> ProjectMembership:
    """Put `user` on `project` with a project role (or change the role)."""
    if actor is not None and not (has_role(actor, Role.ADMIN) or getattr(project, "manager_id", None) == actor.pk):
        raise PermissionDenied(gettext("Only an administrator or the project's manager may change its members."))
    if role not in ProjectRole.values:
        raise ValidationFailed(
            errors=[{"field": "role", "message": gettext("Unknown project role: %(role)s") % {"role": role}}]
        )
    membership, created = ProjectMembership.objects.get_or_create(user=user, project=project, defaults={"role": role})
    before = None if created else membership.role
    if not created and membership.role != role:
        membership.role = role
        membership.version += 1
        membership.save(update_fields=["role", "version", "updated_at"])
    emit(
        events.MembershipSet(project_id=project.id, user_id=user.id, role=role),
        actor=actor,
        object_repr=f"{user.username} @ {project.code}",
        changes={"role": [before, role]},
    )
    return membership


@transaction.atomic
def remove_membership(*, actor, user: User, project) -> None:
    if actor is not None and not (has_role(actor, Role.ADMIN) or getattr(project, "manager_id", None) == actor.pk):
        raise PermissionDenied(gettext("Only an administrator or the project's manager may change its members."))
    deleted, _ = ProjectMembership.objects.filter(user=user, project=project).delete()
    if deleted:
        emit(
            events.MembershipRemoved(project_id=project.id, user_id=user.id),
            actor=actor,
            object_repr=f"{user.username} @ {project.code}",
        )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def issue_api_token(*, actor: User, name: str, days: int | None = None) -> tuple[ApiToken, str]:
    """A new personal token for `actor`; returns the row and the secret, which is never stored."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed(errors=[{"field": "name", "message": gettext("Give the token a name.")}])
    if "\x00" in name:  # PostgreSQL cannot store it
        raise ValidationFailed(errors=[{"field": "name", "message": gettext("Contains a NUL character.")}])
    days = settings.API_TOKEN_DEFAULT_DAYS if days is None else days
    if not 1 <= days <= 366:
        raise ValidationFailed(errors=[{"field": "days", "message": gettext("A token lives from 1 to 366 days.")}])
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=actor,
        name=name[:100],
        prefix=prefix,
        token_hash=_digest(secret),
        expires_at=timezone.now() + timedelta(days=days),
    )
    emit(
        events.ApiTokenIssued(id=token.id, user_id=actor.id),
        actor=actor,
        object_repr=str(token),
        changes={"name": token.name, "expires_at": token.expires_at},
    )
    return token, secret


@transaction.atomic
def revoke_api_token(*, actor: User, token_id) -> ApiToken:
    token = ApiToken.objects.select_for_update().filter(id=token_id).first()
    if token is None or (token.user_id != actor.pk and not has_role(actor, Role.ADMIN)):
        raise TokenNotFound(gettext("No such API token."))
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        emit(events.ApiTokenRevoked(id=token.id, user_id=token.user_id), actor=actor, object_repr=str(token))
    return token


# Every API request starts here: a prepared statement (eoms.core.rows).
_token_by_hash = Select(ApiToken, where=("token_hash",), related=("user",))


def authenticate_api_token(secret: str) -> User | None:
    """The active user behind a bearer token, or None."""
    token = active_api_token(secret)
    return token.user if token is not None else None


def active_api_token(secret: str) -> ApiToken | None:
    """The active token (with its active user) a bearer secret is, or None. Records when it was last
    used (at most once a minute, so reads do not turn into writes)."""
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    token = _token_by_hash.first(_digest(secret))
    if token is None or not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


# Fields whose values never go into an audit entry or an event: only that they changed.
_SECRET_FIELDS = frozenset({"password", "password1", "password2", "usable_password", "user_permissions"})


@transaction.atomic
def save_user_from_back_office(*, actor, user: User, created: bool, changed_fields: list[str]) -> User:
    """Save a user edited in the back office (Django admin) and record it: UserCreated or
    UserUpdated with the changed fields; a password is recorded as changed, never its hash."""
    _require_admin(actor)
    user.save()
    changes = {
        f: "(changed)" if f in _SECRET_FIELDS else _audit_value(getattr(user, f, None))
        for f in changed_fields
        if f != "groups"  # roles are recorded by record_roles_change once they are saved
    }
    if created:
        emit(
            events.UserCreated(id=user.id, username=user.username),
            actor=actor,
            object_repr=user.username,
            changes=changes,
        )
    elif changes:
        emit(
            events.UserUpdated(id=user.id, fields=tuple(sorted(changes))),
            actor=actor,
            object_repr=user.username,
            changes=changes,
        )
    return user


@transaction.atomic
def record_roles_change(*, actor, user: User, before: set[str], after: set[str]) -> None:
    """Record a change of a user's company roles (groups) made in the back office."""
    _require_admin(actor)
    if before != after:
        emit(
            events.UserUpdated(id=user.id, fields=("roles",)),
            actor=actor,
            object_repr=user.username,
            changes={"roles": [sorted(before), sorted(after)]},
        )


def _audit_value(value):
    if hasattr(value, "all"):  # a many-to-many manager
        return sorted(str(v) for v in value.all())
    return None if value is None else str(value)


@transaction.atomic
def record_user_created_by_system(*, user: User) -> None:
    """Record a user made outside the services (Django's createsuperuser) as created by the system."""
    emit(
        events.UserCreated(id=user.id, username=user.username),
        actor=None,
        object_repr=user.username,
        changes={"is_superuser": user.is_superuser, "is_staff": user.is_staff},
    )


class DelegationInvalid(ValidationFailed):
    code = "delegation.invalid"


MAX_DELEGATION_DAYS = 366


@transaction.atomic
def set_delegation(*, actor, user: User, deputy: User, starts_on, ends_on, reason: str = "") -> object:
    """`user` names `deputy` for approval tasks from `starts_on` to `ends_on` (inclusive). A user sets
    their own; an admin may set anyone's. Refused: a deputy who is the user or inactive, an empty or
    over-long period, a period overlapping the user's other delegation, and a cycle (the deputy's
    own chain of deputies on any shared day leads back to the user)."""
    from .models import Delegation

    if actor.pk != user.pk:
        _require_admin(actor)
    from .selectors import is_read_only

    if is_read_only(user):
        raise PermissionDenied(gettext("Auditors decide no approvals and need no deputy."))
    errors = []
    if deputy is None or not deputy.is_active:
        errors.append({"field": "deputy", "message": gettext("Choose an active user as deputy.")})
    elif deputy.pk == user.pk:
        errors.append({"field": "deputy", "message": gettext("A user cannot be their own deputy.")})
    elif is_read_only(deputy):
        errors.append(
            {"field": "deputy", "message": gettext("An auditor cannot decide approvals; choose another deputy.")}
        )
    if starts_on is None or ends_on is None or ends_on < starts_on:
        errors.append({"field": "ends_on", "message": gettext("The period must end on or after its first day.")})
    elif (ends_on - starts_on).days >= MAX_DELEGATION_DAYS:
        errors.append({"field": "ends_on", "message": gettext("A delegation lasts at most one year.")})
    if len(reason or "") > 200:
        errors.append({"field": "reason", "message": gettext("At most %(max)d characters.") % {"max": 200}})
    if errors:
        raise DelegationInvalid(errors=errors)
    # Lock the user's row: two delegations set at once for the same user cannot both pass the checks.
    User.objects.select_for_update().filter(pk=user.pk).first()
    active = Delegation.objects.filter(revoked_at__isnull=True, starts_on__lte=ends_on, ends_on__gte=starts_on)
    if active.filter(user=user).exists():
        raise DelegationInvalid(
            errors=[
                {
                    "field": "starts_on",
                    "message": gettext("%(user)s already has a deputy in this period.") % {"user": user},
                }
            ]
        )
    # Follow the deputy's chain over the days this delegation covers; reaching `user` is a cycle.
    seen, frontier = {user.pk}, [deputy.pk]
    while frontier:
        current = frontier.pop()
        if current in seen:
            raise DelegationInvalid(
                errors=[
                    {
                        "field": "deputy",
                        "message": gettext(
                            "%(deputy)s's own deputies lead back to %(user)s in this period; "
                            "delegations may not form a cycle."
                        )
                        % {"deputy": deputy, "user": user},
                    }
                ]
            )
        seen.add(current)
        frontier.extend(active.filter(user_id=current).values_list("deputy_id", flat=True))
    delegation = Delegation.objects.create(
        user=user, deputy=deputy, starts_on=starts_on, ends_on=ends_on, reason=(reason or "").strip(), created_by=actor
    )
    emit(
        events.DelegationSet(
            id=delegation.id,
            user_id=user.pk,
            deputy_id=deputy.pk,
            starts_on=starts_on.isoformat(),
            ends_on=ends_on.isoformat(),
        ),
        actor=actor,
        object_repr=f"{user} → {deputy}",
        changes={"deputy": deputy.username, "starts_on": starts_on, "ends_on": ends_on, "reason": delegation.reason},
    )
    return delegation


@transaction.atomic
def end_delegation(*, actor, delegation_id) -> None:
    """End a delegation now. Tasks already sent to the deputy stay with the deputy."""
    from .models import Delegation

    delegation = Delegation.objects.select_for_update().filter(pk=delegation_id, revoked_at__isnull=True).first()
    if delegation is None or (delegation.user_id != actor.pk and not has_role(actor, Role.ADMIN)):
        raise DelegationNotFound(gettext("No such delegation."))
    delegation.revoked_at = timezone.now()
    delegation.save(update_fields=["revoked_at", "updated_at"])
    emit(
        events.DelegationEnded(id=delegation.id, user_id=delegation.user_id),
        actor=actor,
        object_repr=str(delegation),
        changes={"revoked_at": delegation.revoked_at},
    )


# What a refused or failed sign-in records, by why it failed: the password did not match (or no such user),
# the account is locked, the address is blocked.
SIGN_IN_FAILURE_REASONS = ("password", "locked", "blocked")


@transaction.atomic
def record_sign_in_failure(*, username: str, reason: str, started: dict[str, int] | None = None) -> None:
    """Audit a failed sign-in (no actor: nobody is signed in) with the username attempted, never the
    password; and the lockout of the account ("locked") or block of the address ("blocked") it started,
    each with the number of failures that started it."""
    if reason not in SIGN_IN_FAILURE_REASONS:
        raise ValueError(f"unknown sign-in failure reason {reason!r}")
    name = username[:150]
    audit.record(
        actor=None,
        action="login.failed",
        object_type="accounts.sign_in",
        object_id=name[:64],
        object_repr=name,
        changes={"username": name, "reason": reason},
    )
    for what, failures in (started or {}).items():
        limit = settings.LOGIN_MAX_FAILURES_PER_ACCOUNT if what == "locked" else settings.LOGIN_MAX_FAILURES_PER_IP
        audit.record(
            actor=None,
            action="login.account_locked" if what == "locked" else "login.ip_blocked",
            object_type="accounts.sign_in",
            object_id=name[:64],
            object_repr=name,
            changes={
                "username": name,
                "failures": failures,
                "limit": limit,
                "window_seconds": settings.LOGIN_FAILURE_WINDOW_SECONDS,
                "seconds": settings.LOGIN_LOCKOUT_SECONDS,
            },
        )
