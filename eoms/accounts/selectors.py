"""Reads about users: their roles and the projects in their scope."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connections, router
from django.db.models import QuerySet

from eoms.core.rows import Select, Values, _convert, _readers

from .models import ApiToken, Delegation, OrgUnit, ProjectMembership, RecoveryCode, TotpDevice, User
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
    "resolve_deputy",
    "delegating_users",
    "read_only_users",
    "list_delegations",
    "managers_of",
    "requires_two_factor",
    "confirmed_device",
    "two_factor_status",
    "api_token_with_access",
]


def roles_of(user) -> frozenset[str]:
    """The company roles of `user`, cached on the object for the request (read with everything else
    the request may ask about the user: _load_access)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_eoms_roles", None)
    if cached is None:
        _load_access(user)
        cached = user._eoms_roles
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def has_global_scope(user) -> bool:
    """A role that sees every project, or the permission orders.view_all_orders (given to the user
    or to one of their groups). Cached on the object for the request."""
    if roles_of(user) & GLOBAL_SCOPE_ROLES:
        return True
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    cached = getattr(user, "_eoms_view_all", None)
    if cached is None:
        _load_access(user)
        cached = user._eoms_view_all
    return cached


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
        cached = {project_id for (project_id,) in _memberships(user.pk)}
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


def read_only_users(user_ids) -> set:
    """Which of these users hold a read-only role (auditors), in two narrow prepared queries."""
    groups = [group_id for (group_id,) in _groups_named(sorted(READ_ONLY_ROLES))]
    return {user_id for (user_id,) in _members_of(list(user_ids), groups)}


# Read on approval steps, and the scope when a vendor cut the memberships short: prepared statements
# (eoms.core.rows).
_memberships = Values(ProjectMembership, fields=("project",), where=("user",))
_groups_named = Values(Group, fields=("id",), where=("name__in",))
_members_of = Values(User.groups.through, fields=("user",), where=("user__in", "group__in"))


def delegating_users(user_ids, *, on) -> set:
    """Which of these users have a delegation in force on date `on` (one narrow query): a task
    for anyone else goes to them directly, with no chain to walk."""
    return {user_id for (user_id,) in _delegating(list(user_ids), on, on)}


_delegating = Values(
    Delegation, fields=("user",), where=("user__in", "revoked_at__isnull", "starts_on__lte", "ends_on__gte")
)


def resolve_deputy(user, *, on) -> tuple:
    """Who receives a task meant for `user` on date `on`: the end of the user's chain of deputies
    (A→B→C gives C), and the chain itself. A cycle (refused when set, but data can be old) stops
    at the last user before it repeats."""
    from .models import Delegation

    chain = [user]
    seen = {user.pk}
    current = user
    while True:
        delegation = (
            Delegation.objects.filter(
                user=current, revoked_at__isnull=True, starts_on__lte=on, ends_on__gte=on, deputy__is_active=True
            )
            .select_related("deputy")
            .first()
        )
        if delegation is None or delegation.deputy_id in seen:
            return current, chain
        current = delegation.deputy
        seen.add(current.pk)
        chain.append(current)


def list_delegations(*, actor, include_ended: bool = False):
    """The actor's delegations (as the absent user or as the deputy); admins see everyone's."""
    from django.db.models import Q

    from .models import Delegation

    qs = Delegation.objects.select_related("user", "deputy").order_by("-starts_on")
    if not has_role(actor, Role.ADMIN):
        qs = qs.filter(Q(user=actor) | Q(deputy=actor))
    if not include_ended:
        qs = qs.filter(revoked_at__isnull=True)
    return qs


def managers_of(user, levels: int) -> list:
    """The managers above `user`, nearest first, up to `levels`: the manager of the user's org unit
    (or of its parent when the user manages the unit), then of the next unit up. Never the user."""
    result = []
    unit = getattr(user, "org_unit", None)
    seen_units = set()
    while unit is not None and len(result) < levels and unit.pk not in seen_units:
        seen_units.add(unit.pk)
        manager = unit.manager
        if manager is not None and manager.is_active and manager.pk != user.pk and manager not in result:
            result.append(manager)
        unit = unit.parent
    return result


# ------------------------------------------------------------------------------------------ two-factor


def requires_two_factor(user) -> bool:
    """The user holds a role listed in EOMS_2FA_REQUIRED_ROLES (settings.TWO_FACTOR_REQUIRED_ROLES)."""
    required = settings.TWO_FACTOR_REQUIRED_ROLES
    return bool(required) and bool(roles_of(user) & set(required))


def confirmed_device(user) -> TotpDevice | None:
    """The user's confirmed authenticator app, or None."""
    if user is None or user.pk is None:
        return None
    return TotpDevice.objects.filter(user_id=user.pk, confirmed_at__isnull=False).order_by("-confirmed_at").first()


def two_factor_status(user) -> dict:
    """For the profile page: the confirmed device (or None), unused recovery codes, whether required."""
    return {
        "device": confirmed_device(user),
        "recovery_codes_left": RecoveryCode.objects.filter(user_id=user.pk, used_at__isnull=True).count(),
        "required": requires_two_factor(user),
    }


_members_by_role = Select(ProjectMembership, where=("project", "role"), related=("user",), order_by=("user",))


def first_member_with_role(project_id, role: str) -> User | None:
    """`members_with_role(project_id, role).first()` (the active member with the smallest id), with one
    prepared statement: order transitions ask it for the stage they enter."""
    return next((m.user for m in _members_by_role.all(project_id, role) if m.user.is_active), None)


# -------------------------------------------------------------- who decides, in one statement (issue 3)

__all__ += ["Approver", "approvers_with_deputies", "read_only_condition"]


def read_only_condition(connection, user_column: str) -> tuple[str, list]:
    """An SQL condition that holds when the user whose id is in `user_column` (a quoted column of
    the caller's statement) holds a read-only role: what is_read_only answers for an active user.
    For a read of another context that carries the flag with its own rows instead of asking for
    the user's roles apart. Answers (sql, params)."""
    qn = connection.ops.quote_name
    links, groups = User.groups.through._meta, Group._meta
    names = sorted(READ_ONLY_ROLES)
    sql = (
        f"EXISTS (SELECT 1 FROM {qn(links.db_table)} ro_l INNER JOIN {qn(groups.db_table)} ro_g "  # noqa: S608
        f"ON ro_g.{qn(groups.pk.column)} = ro_l.{qn(links.get_field('group').column)} "
        f"WHERE ro_l.{qn(links.get_field('user').column)} = {user_column} "
        f"AND ro_g.{qn(groups.get_field('name').column)} IN ({', '.join(['%s'] * len(names))}))"
    )
    return sql, names


@dataclass(frozen=True)
class Approver:
    """A user who may be asked to decide, with what decides who receives the task on a date: whether
    they hold a read-only role, and the first link of their chain of deputies — the active deputy
    of their delegation in force (None: no delegation, the task is theirs), whether that deputy is
    read-only, and whether the deputy delegates in turn (then the rest of the chain is walked with
    resolve_deputy)."""

    user: User
    read_only: bool
    deputy: User | None = None
    deputy_read_only: bool = False
    deputy_delegates: bool = False


def approvers_with_deputies(*, on, user_ids=None, role: str | None = None, active_only: bool = True) -> list[Approver]:
    """Users as approvers (see Approver) on date `on`, in one statement: those of `user_ids` (any
    order), or those in the role group `role` by username; only active users unless `active_only`
    is False. What read_only_users, delegating_users and the first step of resolve_deputy answer,
    without a statement each (the approval engine asks it for every node it activates)."""
    connection = connections[router.db_for_read(User)]
    if role is None:
        ids = [_user_pk.get_db_prep_value(pk, connection) for pk in dict.fromkeys(user_ids or ())]
        if not ids:
            return []
        shape, params = ("ids", len(ids), active_only), ids
    else:
        shape, params = ("role", 0, active_only), [role]
    sql, head_params, readers = _approvers_statement(connection, shape)
    day = _delegation_day.get_db_prep_value(on, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*head_params(day), *params, *([True] if active_only else [])])
        rows = cursor.fetchall()
    width = len(readers)
    out = []
    for row in rows:
        deputy = row[width + 1 : 2 * width + 1]
        out.append(
            Approver(
                user=_user_from(row[:width], readers, connection),
                read_only=bool(row[width]),
                deputy=_user_from(deputy, readers, connection) if deputy[_user_pk_index] is not None else None,
                deputy_read_only=bool(row[-2]),
                deputy_delegates=bool(row[-1]),
            )
        )
    return out


_user_pk = User._meta.pk
_user_pk_index = User._meta.concrete_fields.index(_user_pk)
_delegation_day = Delegation._meta.get_field("starts_on")
_approver_statements: dict = {}


def _approvers_statement(connection, shape: tuple):
    """(sql, the params before the users' for a date, each user column's converters) of
    approvers_with_deputies, built once per database vendor and shape."""
    key = (connection.vendor, shape)
    built = _approver_statements.get(key)
    if built is not None:
        return built
    qn = connection.ops.quote_name
    meta, links, groups, dmeta = User._meta, User.groups.through._meta, Group._meta, Delegation._meta
    fields = list(meta.concrete_fields)
    user_table, pk = qn(meta.db_table), qn(meta.pk.column)
    d_user, d_deputy, starts, ends, revoked = (
        qn(dmeta.get_field(name).column) for name in ("user", "deputy", "starts_on", "ends_on", "revoked_at")
    )
    active = qn(meta.get_field("is_active").column)

    def in_force(alias: str, deputy_alias: str) -> str:
        # As resolve_deputy: not revoked, `on` within its dates, the deputy active.
        return (
            f"{alias}.{revoked} IS NULL AND {alias}.{starts} <= %s AND {alias}.{ends} >= %s "
            f"AND {deputy_alias}.{active} = %s"
        )

    ro_user, ro_names = read_only_condition(connection, f"u.{pk}")
    ro_deputy, _names = read_only_condition(connection, f"du.{pk}")
    onward = (
        f"EXISTS (SELECT 1 FROM {qn(dmeta.db_table)} d2 INNER JOIN {user_table} x ON x.{pk} = d2.{d_deputy} "  # noqa: S608
        f"WHERE d2.{d_user} = du.{pk} AND {in_force('d2', 'x')})"
    )
    # The delegation resolve_deputy follows first: the latest to start among those in force.
    first = (
        f"SELECT d.{d_deputy} FROM {qn(dmeta.db_table)} d INNER JOIN {user_table} y ON y.{pk} = d.{d_deputy} "  # noqa: S608
        f"WHERE d.{d_user} = u.{pk} AND {in_force('d', 'y')} ORDER BY d.{starts} DESC LIMIT 1"
    )
    columns = [f"u.{qn(f.column)}" for f in fields] + [ro_user] + [f"du.{qn(f.column)}" for f in fields]
    sql = f"SELECT {', '.join(columns)}, {ro_deputy}, {onward} FROM {user_table} u "  # noqa: S608
    sql += f"LEFT OUTER JOIN {user_table} du ON du.{pk} = ({first}) WHERE "
    kind, size, active_only = shape
    if kind == "ids":
        sql += f"u.{pk} IN ({', '.join(['%s'] * size)})"
    else:
        sql += (
            f"u.{pk} IN (SELECT r_l.{qn(links.get_field('user').column)} FROM {qn(links.db_table)} r_l "  # noqa: S608
            f"INNER JOIN {qn(groups.db_table)} r_g ON r_g.{qn(groups.pk.column)} = r_l."
            f"{qn(links.get_field('group').column)} WHERE r_g.{qn(groups.get_field('name').column)} = %s)"
        )
    if active_only:
        sql += f" AND u.{active} = %s"
    if kind == "role":
        sql += f" ORDER BY u.{qn(meta.get_field('username').column)}"

    def head_params(day) -> list:
        # In the order of the statement: the user's read-only names, the deputy's, the deputy's
        # onward delegation (date, date, active), then the join's first delegation (same).
        return [*ro_names, *ro_names, day, day, True, day, day, True]

    built = _approver_statements[key] = (sql, head_params, _readers(fields, connection))
    return built


def _user_from(values, readers, connection) -> User:
    """A User from its columns as read, converted as the ORM converts them (as core.rows does)."""
    return User.from_db(
        connection.alias, [col.target.attname for col, _c in readers], _convert(values, readers, connection)
    )


# --------------------------------------------------- what a request asks about its user, in one statement


def api_token_with_access(token_hash: str) -> ApiToken | None:
    """The API token with this hash, with its user, or None; in the same statement everything the
    request then asks about the user, cached on the user object for the request: the roles (roles_of),
    the permission orders.view_all_orders (has_global_scope), the projects of the memberships
    (project_ids_in_scope) and when the authenticator app was confirmed (the token's two-factor check,
    services._token_meets_two_factor). One round trip instead of up to five on every API request made
    with a personal token; the user object is new, made for this request. Whether the token and the user
    are active is the caller's to check."""
    connection = connections[router.db_for_read(ApiToken)]
    sql, readers, params = _access_plan(connection, with_token=True)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, token_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    values = _convert(row[: len(readers)], readers, connection)
    token_names, user_names = _TOKEN_COLUMNS
    token = ApiToken.from_db(connection.alias, token_names, values[: len(token_names)])
    user = User.from_db(connection.alias, user_names, values[len(token_names) :])
    ApiToken._meta.get_field("user").set_cached_value(token, user)
    roles, view_all, projects, memberships, device_at = row[len(readers) :]
    _keep_roles(user, roles, view_all)
    _keep_projects(user, projects, memberships)
    user._eoms_device_confirmed_at = _convert([device_at], _DEVICE_READER[connection.vendor], connection)[0]
    return token


def _load_access(user) -> None:
    """The roles and the permission orders.view_all_orders of any other user object (a session's, an
    OAuth token's, one a service was given), in one statement, cached on the object. Not the projects:
    an object may outlive a change of memberships (scripts, tests), and the scope is read when first
    asked, as before."""
    connection = connections[router.db_for_read(User)]
    sql, _, params = _access_plan(connection, with_token=False)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, User._meta.pk.get_db_prep_value(user.pk, connection)])
        row = cursor.fetchone()
    _keep_roles(user, *(row or (None, 0)))


def _keep_projects(user, projects: str | None, memberships: int) -> None:
    project_ids = {_PROJECT_ID.to_python(p) for p in projects.split(",")} if projects else set()
    if len(project_ids) == memberships:  # else cut short (MySQL's group_concat_max_len): read when asked
        user._eoms_projects = project_ids


def _keep_roles(user, roles: str | None, view_all: int) -> None:
    names = set(roles.split(",")) if roles else set()
    if user.is_superuser:
        names.add(Role.ADMIN)
    user._eoms_roles = frozenset(n for n in names if n in Role.values)
    user._eoms_view_all = user.is_superuser or bool(view_all)


_PROJECT_ID = ProjectMembership._meta.get_field("project").target_field
_TOKEN_COLUMNS = (
    [f.attname for f in ApiToken._meta.concrete_fields],
    [f.attname for f in User._meta.concrete_fields],
)
_access_plans: dict[tuple[str, bool], tuple] = {}
_DEVICE_READER: dict[str, list] = {}


def _aggregate(vendor: str, column: str) -> str:
    """The values of `column` over a group joined with commas, in the vendor's words."""
    if vendor == "postgresql":
        return f"string_agg(CAST({column} AS text), ',')"
    if vendor == "mysql":
        return f"GROUP_CONCAT({column} SEPARATOR ',')"
    return f"group_concat({column}, ',')"


def _access_plan(connection, *, with_token: bool) -> tuple:
    """(SQL, readers of the token's and user's columns, parameters before the last one), built once per
    database vendor: the token's and user's columns, the user's roles and view-all permission, their
    projects, how many, and their app's confirmation time (found by the token's hash); or the roles and
    the permission alone (the user found by id)."""
    plan = _access_plans.get((connection.vendor, with_token))
    if plan is not None:
        return plan
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    qn = connection.ops.quote_name
    tables = {
        name: qn(model._meta.db_table)
        for name, model in {
            "token": ApiToken,
            "user": User,
            "user_groups": User.groups.through,
            "group": Group,
            "perm": Permission,
            "ctype": ContentType,
            "user_perms": User.user_permissions.through,
            "group_perms": Group.permissions.through,
            "membership": ProjectMembership,
            "device": TotpDevice,
        }.items()
    }
    role_names = sorted(Role.values)
    roles_agg, projects_agg = _aggregate(connection.vendor, "g.name"), _aggregate(connection.vendor, "m.project_id")
    access = (
        # The roles: only groups named as a role are joined, so no name with a comma in it passes for one.
        f"(SELECT {roles_agg} FROM {{user_groups}} ug INNER JOIN {{group}} g ON g.id = ug.group_id "  # noqa: S608
        f"WHERE ug.user_id = t1.id AND g.name IN ({', '.join(['%s'] * len(role_names))})), "
        # orders.view_all_orders given to the user or to one of their groups, as Django's ModelBackend
        # (our only backend) answers for an active user who is not a superuser.
        "(SELECT COUNT(*) FROM {perm} p INNER JOIN {ctype} ct ON ct.id = p.content_type_id "
        "WHERE ct.app_label = %s AND p.codename = %s AND ("
        "EXISTS (SELECT 1 FROM {user_perms} up WHERE up.permission_id = p.id AND up.user_id = t1.id) "
        "OR EXISTS (SELECT 1 FROM {user_groups} ug2 INNER JOIN {group_perms} gp ON gp.group_id = ug2.group_id "
        "WHERE gp.permission_id = p.id AND ug2.user_id = t1.id)))"
    )
    if with_token:
        fields = [*ApiToken._meta.concrete_fields, *User._meta.concrete_fields]
        columns = [f"t0.{qn(f.column)}" for f in ApiToken._meta.concrete_fields]
        columns += [f"t1.{qn(f.column)}" for f in User._meta.concrete_fields]
        sql = (
            f"SELECT {', '.join(columns)}, {access}, "  # noqa: S608 (names from the models; values are parameters)
            # The projects of the memberships, and how many there are (a vendor may cut the list short).
            f"(SELECT {projects_agg} FROM {{membership}} m WHERE m.user_id = t1.id), "
            "(SELECT COUNT(*) FROM {membership} m2 WHERE m2.user_id = t1.id), "
            "(SELECT MAX(d.confirmed_at) FROM {device} d WHERE d.user_id = t1.id) "
            "FROM {token} t0 INNER JOIN {user} t1 ON t1.id = t0.user_id WHERE t0.token_hash = %s"
        )
    else:
        fields = []
        sql = f"SELECT {access} FROM {{user}} t1 WHERE t1.id = %s"  # noqa: S608 (as above)
    _DEVICE_READER.setdefault(connection.vendor, _readers([TotpDevice._meta.get_field("confirmed_at")], connection))
    plan = _access_plans[(connection.vendor, with_token)] = (
        sql.format(**tables),
        _readers(fields, connection),
        [*role_names, "orders", "view_all_orders"],
    )
    return plan
