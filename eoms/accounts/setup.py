"""The company roles as Django groups with the model permissions the Django admin needs.
Business rules do not read these permissions: policies decide by role and project scope."""

from django.contrib.auth.models import Group, Permission

from .roles import Role

__all__ = ["ensure_roles"]

_APPS = ("accounts", "masterdata", "orders", "core")


def ensure_roles(**kwargs) -> None:
    ours = Permission.objects.filter(content_type__app_label__in=_APPS)
    views = ours.filter(codename__startswith="view_").exclude(codename="view_all_orders")
    grants = {
        Role.ADMIN: ours,
        Role.AUDITOR: ours.filter(codename__startswith="view_"),
        Role.PROJECT_MANAGER: views.filter(content_type__app_label__in=("masterdata", "orders")),
        Role.APPROVER: views.filter(content_type__app_label__in=("masterdata", "orders")),
        Role.FIELD_ENGINEER: views.filter(content_type__app_label="orders"),
        Role.FINANCE: views.filter(content_type__app_label__in=("masterdata", "orders")),
    }
    for role, perms in grants.items():
        # nosemgrep: eoms-write-outside-services -- the roles' groups follow the code after each migrate (post_migrate)
        group, _ = Group.objects.get_or_create(name=role.value)
        group.permissions.set(perms)
