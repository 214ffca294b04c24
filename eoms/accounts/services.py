"""Every write about users, memberships and API tokens; each audited, each in one transaction."""

import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import OperationalError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from eoms.core import audit, crypto
from eoms.core.context import current_request
from eoms.core.errors import PermissionDenied, ValidationFailed
from eoms.core.events import emit

from . import events, throttling, totp
from .errors import DelegationNotFound, ReauthenticationFailed, TokenNotFound, TooManyAttempts
from .models import ApiToken, OrgUnit, ProjectMembership, RecoveryCode, TotpDevice, User
from .roles import ProjectRole, Role
from .selectors import api_token_with_access, confirmed_device, has_role, requires_two_factor

log = logging.getLogger("eoms.accounts")

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
    "record_signed_in",
    "record_signed_out",
    "record_throttled_failure",
    "check_second_factor",
    "start_totp_enrolment",
    "confirm_totp_device",
    "disable_two_factor",
    "renew_recovery_codes",
    "reset_two_factor",
    "change_password",
    "change_email",
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


def authenticate_api_token(secret: str) -> User | None:
    """The active user behind a bearer token, or None."""
    token = active_api_token(secret)
    return token.user if token is not None else None


def active_api_token(secret: str) -> ApiToken | None:
    """The active token (with its active user) a bearer secret is, or None. Records when it was last
    used (at most once a minute, so reads do not turn into writes). Every API request starts here: the
    token, its user and what the request will ask about the user (roles, scope, authenticator app) are
    one statement (selectors.api_token_with_access)."""
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    token = api_token_with_access(_digest(secret))
    if token is None or not token.is_active or not token.user.is_active:
        return None
    if not _token_meets_two_factor(token):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        _stamp_last_use(token, now)
    return token


def _stamp_last_use(token: ApiToken, now) -> None:
    """Record when a token was last used. A stamp is information, not the request's business: when the
    database refuses it for the moment (SQLite's table lock under concurrent requests, "database table
    is locked"), the request goes on and a later use stamps it."""
    try:
        with transaction.atomic():
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    except OperationalError as exc:
        log.warning("last use of API token %s not recorded: %s", token.prefix, exc)


def _token_meets_two_factor(token: ApiToken) -> bool:
    """A user whose role requires two-factor authentication may use only tokens made since their
    authenticator app was confirmed (tokens are made only from a session that passed it): a token
    from before, or of a user who has not set one up, would let the API skip the second factor.
    The roles and the time the app was confirmed came with the token (no query)."""
    if not requires_two_factor(token.user):
        return True
    confirmed_at = token.user._eoms_device_confirmed_at
    return confirmed_at is not None and token.created_at >= confirmed_at


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
# the account is locked, the address is blocked. (A wrong second-factor code is `twofa.verify_failed`.)
SIGN_IN_FAILURE_REASONS = ("password", "locked", "blocked")


@transaction.atomic
def record_signed_in(*, user, second_factor: bool) -> None:
    """Audit a completed sign-in (after the second factor when the user has one); the address and
    request id come with every entry."""
    audit.record(
        actor=user,
        action="login.succeeded",
        object_type="accounts.sign_in",
        object_id=user.pk,
        object_repr=user.username,
        changes={"second_factor": second_factor},
    )


def record_signed_out(*, user) -> None:
    audit.record(
        actor=user,
        action="login.signed_out",
        object_type="accounts.sign_in",
        object_id=user.pk,
        object_repr=user.username,
    )


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
    _record_lockouts(name, started)


def _record_lockouts(name: str, started: dict[str, int] | None) -> None:
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


@transaction.atomic
def record_throttled_failure(*, username: str, reason: str, started: dict[str, int]) -> None:
    """A failed or refused attempt as the sign-in form records it, with the lockout metrics."""
    record_sign_in_failure(username=username, reason=reason, started=started)
    for what in started:
        throttling.LOCKOUTS.labels(scope="account" if what == "locked" else "ip").inc()


# ------------------------------------------------------------------------------------------ two-factor
#
# Secrets and codes never reach an audit entry, an event or a log line: entries say what happened
# ("twofa.verified", method totp) and for what purpose, never the code.

# Why a code (or the password) is asked again: recorded with each verification.
PURPOSES = ("sign_in", "re_enrol", "enrol", "disable", "recovery_codes", "password", "email")
ENROLMENT_MINUTES = 15  # a pending device (QR shown, first code not yet given) lives this long


def _device_secret(device: TotpDevice) -> bytes:
    return totp.from_b32(crypto.open_cell(device, "secret"))


def enrolment_secret(*, actor, device_id) -> tuple[TotpDevice, str] | None:
    """The actor's pending device and its secret (base32) while enrolling, for the QR page; None when
    there is no such pending device or it is older than ENROLMENT_MINUTES."""
    since = timezone.now() - timedelta(minutes=ENROLMENT_MINUTES)
    try:
        device = TotpDevice.objects.filter(
            pk=device_id, user_id=actor.pk, confirmed_at__isnull=True, created_at__gte=since
        ).first()
    except (ValueError, ValidationError):
        return None
    return (device, totp.b32(_device_secret(device))) if device else None


def _take_totp(device: TotpDevice, code: str) -> bool:
    """Use `code` of `device` once: compare-and-set of the last used time step, so a code (and any code
    of an earlier step) works once however many requests carry it at the same moment."""
    step = totp.matching_step(_device_secret(device), code, after=device.last_step)
    if step is None:
        return False
    return (
        TotpDevice.objects.filter(pk=device.pk, last_step__lt=step).update(last_step=step, last_used_at=timezone.now())
        == 1
    )


def _take_recovery_code(user, code: str) -> bool:
    if len(totp.normalise_recovery_code(code)) != totp.RECOVERY_CODE_CHARS:
        return False
    return (
        RecoveryCode.objects.filter(
            user_id=user.pk, code_hash=totp.recovery_code_digest(code), used_at__isnull=True
        ).update(used_at=timezone.now())
        == 1
    )


def _audit_twofa(user, action: str, changes: dict) -> None:
    audit.record(
        actor=user,
        action=action,
        object_type="accounts.user",
        object_id=user.pk,
        object_repr=user.username,
        changes=changes,
    )


@transaction.atomic
def _verify_code(*, user, code: str, purpose: str) -> str | None:
    """ "totp" or "recovery" when `code` is a good code of `user` (and is now used up), None otherwise;
    audited either way, in this transaction, so a failure is recorded even though nothing changes."""
    code = (code or "").strip()
    device = confirmed_device(user)
    method = None
    if device is not None and totp.looks_like_totp(code):
        method = "totp" if _take_totp(device, code) else None
    elif _take_recovery_code(user, code):
        method = "recovery"
    if method == "totp":
        _audit_twofa(user, "twofa.verified", {"purpose": purpose, "method": "totp"})
    elif method == "recovery":
        remaining = RecoveryCode.objects.filter(user_id=user.pk, used_at__isnull=True).count()
        emit(
            events.RecoveryCodeUsed(user_id=user.pk, remaining=remaining),
            actor=user,
            object_repr=user.username,
            changes={"purpose": purpose, "remaining": remaining},
        )
    else:
        _audit_twofa(user, "twofa.verify_failed", {"purpose": purpose})
    return method


def _begin_attempt(user) -> throttling.Attempt:
    """One slot of the sign-in throttle (eoms.accounts.throttling) for a code or password check of
    `user`: codes are guessed like passwords and count against the same limits."""
    attempt = throttling.begin(username=user.username, ip=current_request().ip)
    if attempt.refused:
        record_throttled_failure(username=user.username, reason=attempt.refused, started=attempt.started)
        raise TooManyAttempts(gettext("Too many failed attempts. Try again later."), retry_after=attempt.retry_after)
    return attempt


def _fail_attempt(attempt: throttling.Attempt, *, purpose: str) -> None:
    started = throttling.failed(attempt)
    if started:
        with transaction.atomic():
            _record_lockouts(attempt.username[:150], started)
        for what in started:
            throttling.LOCKOUTS.labels(scope="account" if what == "locked" else "ip").inc()
    if purpose == "sign_in":  # eoms_login_failures_total counts it with the wrong passwords
        user_login_failed.send(sender=__name__, credentials={"username": attempt.username}, request=None)


def _code_error() -> ReauthenticationFailed:
    return ReauthenticationFailed(
        errors=[
            {
                "field": "code",
                "message": gettext(
                    "That code is not right, or was used already. Enter the current code of your "
                    "authenticator app, or an unused recovery code."
                ),
            }
        ]
    )


def check_second_factor(*, user, code: str, purpose: str) -> str:
    """Check a code of `user` (a TOTP code of their app, or one of their recovery codes) and use it up.
    Throttled and counted with the sign-in failures. Returns "totp" or "recovery"; raises TooManyAttempts
    (429) while the account or address is locked, ReauthenticationFailed for a wrong or used code."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    attempt = _begin_attempt(user)
    method = _verify_code(user=user, code=code, purpose=purpose)
    if method is None:
        _fail_attempt(attempt, purpose=purpose)
        raise _code_error()
    throttling.succeeded(attempt)
    return method


def _reauthenticate(*, user, password: str, code: str, purpose: str) -> None:
    """Before a change of password or email: the current password and, with two-factor authentication
    on, a fresh code; one throttled attempt for both."""
    attempt = _begin_attempt(user)
    if not user.check_password(password or ""):
        with transaction.atomic():
            _audit_twofa(user, "account.reauthentication_failed", {"purpose": purpose, "reason": "password"})
        _fail_attempt(attempt, purpose=purpose)
        raise ReauthenticationFailed(
            errors=[{"field": "current_password", "message": gettext("Your current password is not right.")}]
        )
    if confirmed_device(user) is not None and _verify_code(user=user, code=code, purpose=purpose) is None:
        _fail_attempt(attempt, purpose=purpose)
        raise _code_error()
    throttling.succeeded(attempt)


def _replace_recovery_codes(user) -> list[str]:
    RecoveryCode.objects.filter(user_id=user.pk).delete()
    codes = totp.new_recovery_codes()
    RecoveryCode.objects.bulk_create(
        [RecoveryCode(user_id=user.pk, code_hash=totp.recovery_code_digest(c)) for c in codes]
    )
    return codes


def start_totp_enrolment(*, actor, code: str = "") -> tuple[TotpDevice, str]:
    """A new pending authenticator app for `actor`: returns the device and its secret (base32) for the QR
    code. With an app already confirmed, a fresh code of it (or a recovery code) is asked first. Earlier
    pending devices of the actor are dropped; the confirmed one stays until the new one is confirmed."""
    if confirmed_device(actor) is not None:
        check_second_factor(user=actor, code=code, purpose="re_enrol")
    return _create_pending_device(actor=actor)


@transaction.atomic
def _create_pending_device(*, actor) -> tuple[TotpDevice, str]:
    TotpDevice.objects.filter(user_id=actor.pk, confirmed_at__isnull=True).delete()
    secret = totp.new_secret()
    device = TotpDevice(user=actor)
    device.secret_enc = crypto.encrypt(
        totp.b32(secret), table=TotpDevice._meta.db_table, column="secret", row_id=device.pk
    )
    device.save()
    _audit_twofa(actor, "twofa.enrolment_started", {"device": str(device.pk)})
    return device, totp.b32(secret)


def confirm_totp_device(*, actor, device_id, code: str) -> tuple[TotpDevice, list[str]]:
    """Confirm the actor's pending device with its first code: it becomes the actor's only device (an
    earlier one is removed), and ten new recovery codes replace any old ones. Returns the device and the
    codes, which are shown once and stored only as hashes. Throttled like every code."""
    pending = enrolment_secret(actor=actor, device_id=device_id)
    if pending is None:
        raise ValidationFailed(errors=[{"field": "code", "message": gettext("This set-up has expired. Start again.")}])
    attempt = _begin_attempt(actor)
    result = _confirm(actor=actor, device=pending[0], code=code)
    if result is None:
        _fail_attempt(attempt, purpose="enrol")
        raise _code_error()
    throttling.succeeded(attempt)
    return result


@transaction.atomic
def _confirm(*, actor, device: TotpDevice, code: str) -> tuple[TotpDevice, list[str]] | None:
    # The user's row lock: two confirmations at once cannot leave two confirmed devices.
    User.objects.select_for_update().filter(pk=actor.pk).first()
    device = TotpDevice.objects.filter(pk=device.pk, confirmed_at__isnull=True).first()
    if device is None or not _take_totp(device, code):
        _audit_twofa(actor, "twofa.verify_failed", {"purpose": "enrol"})
        return None
    replaced = TotpDevice.objects.filter(user_id=actor.pk).exclude(pk=device.pk).delete()[0] > 0
    TotpDevice.objects.filter(pk=device.pk).update(confirmed_at=timezone.now())
    device.refresh_from_db()
    codes = _replace_recovery_codes(actor)
    emit(
        events.TwoFactorEnabled(user_id=actor.pk, device_id=device.pk, replaced=replaced),
        actor=actor,
        object_repr=actor.username,
        changes={"device": str(device.pk), "replaced": replaced, "recovery_codes": len(codes)},
    )
    return device, codes


def disable_two_factor(*, actor, code: str) -> None:
    """Turn two-factor authentication off for `actor` after a fresh code. Refused while a role of the
    actor requires it (EOMS_2FA_REQUIRED_ROLES): such a user sets up a new phone instead."""
    if requires_two_factor(actor):
        raise PermissionDenied(
            gettext("Your role requires two-factor authentication; set up a new phone instead of turning it off.")
        )
    if confirmed_device(actor) is None:
        raise ValidationFailed(errors=[{"field": "code", "message": gettext("Two-factor authentication is off.")}])
    check_second_factor(user=actor, code=code, purpose="disable")
    _remove_two_factor(user=actor, actor=actor, event=events.TwoFactorDisabled(user_id=actor.pk))


@transaction.atomic
def _remove_two_factor(*, user, actor, event) -> None:
    devices = TotpDevice.objects.filter(user_id=user.pk).delete()[0]
    codes = RecoveryCode.objects.filter(user_id=user.pk).delete()[0]
    emit(event, actor=actor, object_repr=user.username, changes={"devices": devices, "recovery_codes": codes})


def reset_two_factor(*, actor, user) -> None:
    """An administrator removes `user`'s authenticator app and recovery codes (a lost phone). The user
    signs in with the password alone next time, and is sent to set up a new app if a role requires it."""
    _require_admin(actor)
    _remove_two_factor(user=user, actor=actor, event=events.TwoFactorReset(user_id=user.pk))


def renew_recovery_codes(*, actor, code: str) -> list[str]:
    """Ten new recovery codes for `actor` after a fresh code; the old ones stop working."""
    if confirmed_device(actor) is None:
        raise ValidationFailed(errors=[{"field": "code", "message": gettext("Two-factor authentication is off.")}])
    check_second_factor(user=actor, code=code, purpose="recovery_codes")
    return _renew_codes(actor=actor)


@transaction.atomic
def _renew_codes(*, actor) -> list[str]:
    codes = _replace_recovery_codes(actor)
    emit(
        events.RecoveryCodesRenewed(user_id=actor.pk),
        actor=actor,
        object_repr=actor.username,
        changes={"recovery_codes": len(codes)},
    )
    return codes


def change_password(*, actor, current_password: str, new_password: str, new_password_again: str, code: str = ""):
    """Change the actor's own password: the new one must pass the password validators (settings
    AUTH_PASSWORD_VALIDATORS) and be typed twice; then the current password and, with two-factor
    authentication on, a fresh code are checked (throttled). Other sessions of the user end (Django
    checks each session against the password hash); the caller keeps this one."""
    errors = []
    if new_password != new_password_again:
        errors.append({"field": "new_password_again", "message": gettext("The two new passwords differ.")})
    else:
        try:
            password_validation.validate_password(new_password, actor)
        except ValidationError as exc:
            errors.extend({"field": "new_password", "message": str(m)} for m in exc.messages)
    if errors:
        raise ValidationFailed(errors=errors)
    _reauthenticate(user=actor, password=current_password, code=code, purpose="password")
    _save_password(actor=actor, new_password=new_password)


@transaction.atomic
def _save_password(*, actor, new_password: str) -> None:
    actor.set_password(new_password)
    actor.save(update_fields=["password"])
    emit(
        events.UserUpdated(id=actor.pk, fields=("password",)),
        actor=actor,
        object_repr=actor.username,
        changes={"password": "(changed)"},
    )


def change_email(*, actor, email: str, current_password: str, code: str = "") -> None:
    """Change the actor's own email address, after the current password and (with two-factor
    authentication on) a fresh code."""
    email = (email or "").strip()
    try:
        validate_email(email)
        if len(email) > 254:
            raise ValidationError("too long")
    except ValidationError:
        raise ValidationFailed(errors=[{"field": "email", "message": gettext("Enter a valid email address.")}])
    _reauthenticate(user=actor, password=current_password, code=code, purpose="email")
    _save_email(actor=actor, email=email)


@transaction.atomic
def _save_email(*, actor, email: str) -> None:
    before = actor.email
    User.objects.filter(pk=actor.pk).update(email=email)
    actor.email = email
    emit(
        events.UserUpdated(id=actor.pk, fields=("email",)),
        actor=actor,
        object_repr=actor.username,
        changes={"email": [before, email]},
    )
