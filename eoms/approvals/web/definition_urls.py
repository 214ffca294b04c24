"""The flow editor's pages under /approvals/flows/ (namespace "approvals", from web/urls.py)."""

from django.urls import path

from . import definitions as views

urlpatterns = [
    path("flows/", views.definition_list, name="definitions"),
    path("flows/new/", views.definition_create, name="definition_new"),
    path("flows/import/", views.definition_import, name="definition_import"),
    path("flows/preview/", views.definition_preview, name="definition_preview"),
    path("flows/<uuid:definition_id>/", views.definition_detail, name="definition"),
    path("flows/<uuid:definition_id>/edit/", views.definition_edit, name="definition_edit"),
    path("flows/<uuid:definition_id>/publish/", views.definition_publish, name="definition_publish"),
    path("flows/<uuid:definition_id>/bpmn/", views.definition_export, name="definition_export"),
    path("flows/<uuid:definition_id>/simulate/", views.definition_simulate, name="definition_simulate"),
    path("flows/<uuid:definition_id>/dry-run/", views.definition_dry_run, name="definition_dry_run"),
    path("flows/<uuid:definition_id>/migrate/", views.definition_migrate, name="definition_migrate"),
]
