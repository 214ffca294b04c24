"""What a request made with a personal token asks about its user — the token, the user, their roles,
the permission to see every project, the projects of their memberships, when their authenticator app was
confirmed — is read in one statement (selectors.api_token_with_access), and answers what the separate
reads answer: the same roles, scope and refusals on every database. Any other user object gets its
roles and the permission in one statement (selectors._load_access)."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from eoms.accounts import selectors, services
from eoms.accounts.models import ApiToken, User
from eoms.accounts.roles import Role
from eoms.testing.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def fresh(user) -> User:
    return User.objects.get(pk=user.pk)  # a new request: nothing cached on the object


def _token_of(user) -> tuple[ApiToken, str]:
    token, secret = services.issue_api_token(actor=user, name="t")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())  # no last-use write in the way
    return token, secret


def test_a_token_brings_its_user_roles_scope_and_app_in_one_statement(world):
    other = ProjectFactory()
    MembershipFactory(user=world.pm, project=other)
    token, secret = _token_of(world.pm)
    with CaptureQueriesContext(connection) as queries:
        found = services.active_api_token(secret)
        assert found.pk == token.pk and found.user.pk == world.pm.pk
        assert selectors.roles_of(found.user) == {Role.PROJECT_MANAGER}
        assert selectors.has_global_scope(found.user) is False
        assert selectors.project_ids_in_scope(found.user) == {world.project.pk, other.pk}
        assert selectors.requires_two_factor(found.user) is False
    assert len(queries.captured_queries) == 1


def test_an_api_request_with_a_token_reads_the_caller_once(world):
    _token, secret = _token_of(world.pm)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/api/v1/accounts/me")
    assert response.status_code == 200 and response.json()["roles"] == ["project_manager"]
    assert len(queries.captured_queries) == 1
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/api/v1/orders", {"cursor": ""})
    assert response.status_code == 200
    assert len(queries.captured_queries) == 2  # the caller with their scope; the page of orders


@pytest.mark.parametrize("who", ["admin", "auditor", "pm", "approver", "engineer", "finance", "outsider"])
def test_the_token_statement_answers_as_the_separate_reads(world, who):
    user = getattr(world, who)
    _token, secret = _token_of(user)
    via_token = services.active_api_token(secret).user
    separate = fresh(user)
    assert selectors.roles_of(via_token) == selectors.roles_of(separate)
    assert selectors.has_global_scope(via_token) == selectors.has_global_scope(separate)
    assert selectors.project_ids_in_scope(via_token) == selectors.project_ids_in_scope(separate)
    members = set(user.memberships.values_list("project_id", flat=True))
    assert selectors.project_ids_in_scope(separate) == (None if who in ("admin", "auditor") else members)


@pytest.mark.parametrize("via", ["user", "group"])
def test_the_permission_to_see_everything_comes_with_the_token(world, via):
    view_all = Permission.objects.get(codename="view_all_orders", content_type__app_label="orders")
    if via == "user":
        world.pm.user_permissions.add(view_all)
    else:
        group = Group.objects.create(name="controllers")
        group.permissions.add(view_all)
        world.pm.groups.add(group)
    _token, secret = _token_of(world.pm)
    user = services.active_api_token(secret).user
    assert selectors.roles_of(user) == {Role.PROJECT_MANAGER}  # "controllers" is no role
    assert selectors.has_global_scope(user) is True
    assert selectors.project_ids_in_scope(user) is None


def test_other_callers_get_roles_and_the_permission_in_one_statement_and_the_scope_when_asked(world):
    user = fresh(world.pm)
    with CaptureQueriesContext(connection) as queries:
        assert selectors.roles_of(user) == {Role.PROJECT_MANAGER}
        assert selectors.has_global_scope(user) is False
    assert len(queries.captured_queries) == 1
    other = ProjectFactory()
    MembershipFactory(user=user, project=other)  # after the roles were read: still counts
    assert selectors.project_ids_in_scope(user) == {world.project.pk, other.pk}


def test_a_superuser_is_an_administrator(world):
    boss = UserFactory(username="boss", roles=[])
    User.objects.filter(pk=boss.pk).update(is_superuser=True)
    _token, secret = _token_of(fresh(boss))
    user = services.active_api_token(secret).user
    assert selectors.roles_of(user) == {Role.ADMIN}
    assert selectors.has_global_scope(user) is True


def test_a_group_named_with_a_comma_and_a_role_is_no_role(world):
    """The roles travel joined with commas: a group whose name holds one cannot smuggle a role in."""
    world.pm.groups.add(Group.objects.create(name="x,admin"), Group.objects.create(name="auditor,"))
    _token, secret = _token_of(world.pm)
    user = services.active_api_token(secret).user
    assert selectors.roles_of(user) == {Role.PROJECT_MANAGER}
    assert selectors.roles_of(fresh(world.pm)) == {Role.PROJECT_MANAGER}
    assert selectors.has_global_scope(user) is False


def test_a_user_without_roles_or_memberships(world):
    nobody = UserFactory(username="nobody", roles=[])
    _token, secret = _token_of(nobody)
    user = services.active_api_token(secret).user
    assert selectors.roles_of(user) == frozenset()
    assert selectors.project_ids_in_scope(user) == set()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/orders").json()["results"] == []


def test_memberships_cut_short_by_the_database_are_read_again(world):
    """MySQL cuts GROUP_CONCAT at group_concat_max_len (1024 bytes by default): a list shorter than the
    count is not believed, and the scope is read on its own when asked."""
    user = fresh(world.pm)
    selectors.roles_of(user)
    selectors._keep_projects(user, str(world.other_project.pk), 2)
    assert not hasattr(user, "_eoms_projects")
    with CaptureQueriesContext(connection) as queries:
        assert selectors.project_ids_in_scope(user) == {world.project.pk}
    assert len(queries.captured_queries) == 1


def test_the_token_is_read_afresh_on_every_request(world):
    """Nothing about the caller outlives a request: a role taken away, a user disabled or a token revoked
    counts at the next request."""
    token, secret = _token_of(world.admin)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/accounts/me").json()["roles"] == ["admin"]
    world.admin.groups.set([Group.objects.get(name=Role.FINANCE)])
    assert api.get("/api/v1/accounts/me").json()["roles"] == ["finance"]
    User.objects.filter(pk=world.admin.pk).update(is_active=False)
    assert api.get("/api/v1/accounts/me").status_code == 401
    User.objects.filter(pk=world.admin.pk).update(is_active=True)
    assert api.get("/api/v1/accounts/me").status_code == 200
    services.revoke_api_token(actor=world.admin, token_id=token.pk)
    assert api.get("/api/v1/accounts/me").status_code == 401
