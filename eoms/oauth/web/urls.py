"""OAuth2 pages under /oauth/ in the "oauth" namespace: clients (administrators only) and the apps a user
has authorized (each user their own)."""

from django.urls import path

from . import views

app_name = "oauth"
urlpatterns = [
    path("clients/", views.client_list, name="list"),
    path("clients/new/", views.client_create, name="create"),
    path("clients/<uuid:client_id>/", views.client_detail, name="detail"),
    path("clients/<uuid:client_id>/secret/", views.client_rotate_secret, name="rotate-secret"),
    path("clients/<uuid:client_id>/delete/", views.client_delete, name="delete"),
    path("authorized/", views.authorized_list, name="authorized"),
    path("authorized/<uuid:client_id>/revoke/", views.authorized_revoke, name="authorized-revoke"),
]
