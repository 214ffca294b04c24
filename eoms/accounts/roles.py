"""The company roles (Django groups) and the project roles of a membership."""

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["Role", "ProjectRole", "GLOBAL_SCOPE_ROLES", "READ_ONLY_ROLES"]


class Role(models.TextChoices):
    ADMIN = "admin", _("Administrator")
    PROJECT_MANAGER = "project_manager", _("Project manager")
    APPROVER = "approver", _("Approver")
    FIELD_ENGINEER = "field_engineer", _("Field engineer")
    FINANCE = "finance", _("Finance")
    AUDITOR = "auditor", _("Auditor")


class ProjectRole(models.TextChoices):
    PM = "pm", _("Project manager")
    ENGINEER = "engineer", _("Engineer")
    VIEWER = "viewer", _("Viewer")


# Roles that see every project; the auditor reads everything and changes nothing.
GLOBAL_SCOPE_ROLES = frozenset({Role.ADMIN, Role.AUDITOR})
READ_ONLY_ROLES = frozenset({Role.AUDITOR})
