"""OAuth2 client pages under /oauth/clients/ in the "oauth" namespace (administrators only)."""

from django.urls import path

from . import views

app_name = "oauth"
urlpatterns = [
    path("", views.client_list, name="list"),
    path("new/", views.client_create, name="create"),
    path("<uuid:client_id>/", views.client_detail, name="detail"),
    path("<uuid:client_id>/secret/", views.client_rotate_secret, name="rotate-secret"),
    path("<uuid:client_id>/delete/", views.client_delete, name="delete"),
]
