"""Webhook pages under /webhooks/ in the "webhooks" namespace (administrators only)."""

from django.urls import path

from . import views

app_name = "webhooks"
urlpatterns = [
    path("", views.webhook_list, name="list"),
    path("new/", views.webhook_create, name="create"),
    path("<uuid:webhook_id>/", views.webhook_detail, name="detail"),
    path("<uuid:webhook_id>/pause/", views.webhook_pause, name="pause"),
    path("<uuid:webhook_id>/resume/", views.webhook_resume, name="resume"),
    path("<uuid:webhook_id>/delete/", views.webhook_delete, name="delete"),
    path("<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver/", views.delivery_redeliver, name="redeliver"),
]
