from django.urls import path

from . import views

app_name = "masterdata"
urlpatterns = [
    path("projects/", views.project_list, name="projects"),
    path("projects/new/", views.project_create, name="project_create"),
    path("projects/import/", views.project_import, name="project_import"),
    path("projects/import/template.xlsx", views.project_template, name="project_template"),
    path("projects/<uuid:project_id>/", views.project_detail, name="project_detail"),
    path("projects/<uuid:project_id>/edit/", views.project_edit, name="project_edit"),
    path("projects/<uuid:project_id>/members/", views.project_member_add, name="project_member_add"),
    path(
        "projects/<uuid:project_id>/members/<uuid:user_id>/remove/",
        views.project_member_remove,
        name="project_member_remove",
    ),
    path("project-types/", views.project_types, name="project_types"),
    path("customers/", views.customer_list, name="customers"),
    path("customers/new/", views.customer_create, name="customer_create"),
    path("customers/import/", views.customer_import, name="customer_import"),
    path("customers/import/template.xlsx", views.customer_template, name="customer_template"),
    path("customers/<uuid:customer_id>/", views.customer_detail, name="customer_detail"),
    path("customers/<uuid:customer_id>/edit/", views.customer_edit, name="customer_edit"),
    path("customers/<uuid:customer_id>/delete/", views.customer_delete, name="customer_delete"),
    path("customers/<uuid:customer_id>/reveal/", views.customer_reveal, name="customer_reveal"),
    path("suppliers/", views.supplier_list, name="suppliers"),
    path("suppliers/new/", views.supplier_create, name="supplier_create"),
    path("suppliers/<uuid:supplier_id>/", views.supplier_detail, name="supplier_detail"),
    path("suppliers/<uuid:supplier_id>/edit/", views.supplier_edit, name="supplier_edit"),
    path("suppliers/<uuid:supplier_id>/reveal/", views.supplier_reveal, name="supplier_reveal"),
]
