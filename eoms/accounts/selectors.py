"""Reads about users: their roles and the projects in their scope."""

from django.db.models import QuerySet

from .models import ApiToken, OrgUnit, ProjectMembership, User
from .roles import GLOBAL_SCOPE_ROLES, READ_ONLY_ROLES, ProjectRole, Role

__all__ = [
    "roles_of",
    "has_role",
    "has_global_scope",
    "is_read_only",
    "project_ids_in_scope",
    "project_role",
    "members_with_role",
    "list_users",
    "list_org_units",
    "list_api_tokens",
    "users_with_role",
    "get_active_user",
]


def roles_of(user) -> frozenset[str]:
    """The company roles of `user`, cached on the object for the request."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_eoms_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        if user.is_superuser:
            names.add(Role.ADMIN)
        cached = frozenset(n for n in names if n in Role.values)
        user._eoms_roles = cached
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def has_global_scope(user) -> bool:
    return bool(roles_of(user) & GLOBAL_SCOPE_ROLES) or (
        getattr(user, "is_authenticated", False) and user.has_perm("orders.view_all_orders")
    )


def is_read_only(user) -> bool:
    """Auditors read everything and change nothing, whatever other roles they hold."""
    return bool(roles_of(user) & READ_ONLY_ROLES)


def project_ids_in_scope(user) -> set | None:
    """Ids of the projects whose data `user` may see; None means every project."""
    if not roles_of(user):
        return set()
    if has_global_scope(user):
        return None
    cached = getattr(user, "_eoms_projects", None)
    if cached is None:
        cached = set(ProjectMembership.objects.filter(user=user).values_list("project_id", flat=True))
        user._eoms_projects = cached
    return cached


def project_role(user, project_id) -> str | None:
    return ProjectMembership.objects.filter(user=user, project_id=project_id).values_list("role", flat=True).first()


def members_with_role(project_id, role: str = ProjectRole.PM) -> QuerySet[User]:
    return User.objects.filter(memberships__project_id=project_id, memberships__role=role, is_active=True)


def users_with_role(role: str) -> QuerySet[User]:
    return User.objects.filter(groups__name=role, is_active=True).distinct()


def list_users(*, actor, search: str = "") -> QuerySet[User]:
    qs = User.objects.filter(is_active=True).select_related("org_unit").order_by("username")
    if search:
        qs = qs.filter(username__icontains=search) | qs.filter(display_name__icontains=search)
    return qs


def list_org_units(*, actor) -> QuerySet[OrgUnit]:
    return OrgUnit.objects.select_related("parent", "manager").order_by("code")


def list_api_tokens(*, actor) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=actor).order_by("-created_at")


def get_active_user(user_id) -> User | None:
    """An active user by id, or None (also for a malformed id)."""
    try:
        return User.objects.filter(pk=user_id, is_active=True).first()
    except (ValueError, TypeError):
        return None
