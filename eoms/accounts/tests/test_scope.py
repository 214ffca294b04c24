"""Who sees every project: global roles, and the permission orders.view_all_orders given to a user
or to one of their groups (answered as Django's ModelBackend would, in the one statement that reads
the roles and the memberships too)."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from eoms.accounts.models import User
from eoms.accounts.roles import Role
from eoms.accounts.selectors import has_global_scope, project_ids_in_scope
from eoms.testing.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def fresh(user) -> User:
    return User.objects.get(pk=user.pk)  # a new request: nothing cached on the object


@pytest.fixture
def view_all():
    return Permission.objects.get(codename="view_all_orders", content_type__app_label="orders")


def test_global_roles_and_plain_members():
    pm = UserFactory(roles=[Role.PROJECT_MANAGER])
    project = ProjectFactory()
    MembershipFactory(user=pm, project=project)
    assert has_global_scope(fresh(UserFactory(roles=[Role.ADMIN])))
    assert has_global_scope(fresh(UserFactory(roles=[Role.AUDITOR])))
    assert not has_global_scope(fresh(pm))
    assert project_ids_in_scope(fresh(pm)) == {project.pk}


@pytest.mark.parametrize("via", ["user", "group"])
def test_the_permission_given_to_the_user_or_a_group(view_all, via):
    pm = UserFactory(roles=[Role.PROJECT_MANAGER])
    if via == "user":
        pm.user_permissions.add(view_all)
    else:
        group = Group.objects.create(name="group-controllers")
        group.permissions.add(view_all)
        pm.groups.add(group)
    user = fresh(pm)
    assert user.has_perm("orders.view_all_orders")  # Django's own answer, for comparison
    with CaptureQueriesContext(connection) as queries:
        assert has_global_scope(user) and has_global_scope(user)
    assert len(queries.captured_queries) == 1  # roles, the permission and the memberships; then cached
    assert project_ids_in_scope(user) is None


def test_another_permission_or_an_inactive_user_does_not_count(view_all):
    pm = UserFactory(roles=[Role.PROJECT_MANAGER])
    pm.user_permissions.add(Permission.objects.get(codename="view_order", content_type__app_label="orders"))
    assert not has_global_scope(fresh(pm))
    pm.user_permissions.add(view_all)
    pm.is_active = False
    pm.save(update_fields=["is_active"])
    assert not has_global_scope(fresh(pm))


def test_first_member_with_role_is_what_the_queryset_gives_first():
    from eoms.accounts.roles import ProjectRole
    from eoms.accounts.selectors import first_member_with_role, members_with_role

    project, other = ProjectFactory(), ProjectFactory()
    engineers = [MembershipFactory(project=project, role=ProjectRole.ENGINEER).user for _ in range(3)]
    MembershipFactory(project=project, role=ProjectRole.VIEWER)
    MembershipFactory(project=other, role=ProjectRole.ENGINEER)
    first = min(engineers, key=lambda u: u.pk)
    assert first_member_with_role(project.pk, ProjectRole.ENGINEER) == first
    first.is_active = False
    first.save(update_fields=["is_active"])
    expected = members_with_role(project.pk, ProjectRole.ENGINEER).first()
    assert expected != first and first_member_with_role(project.pk, ProjectRole.ENGINEER) == expected
    assert first_member_with_role(project.pk, ProjectRole.PM) is None
