"""Notification pages under /notifications/ in the "notifications" namespace."""

from django.urls import path

from . import views

app_name = "notifications"
urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("read-all/", views.mark_all_read, name="read_all"),
    path("preferences/", views.preferences, name="preferences"),
    path("deliveries/", views.deliveries, name="deliveries"),
    path("deliveries/act/", views.deliveries_act, name="deliveries_act"),
    path("<uuid:notification_id>/open/", views.open_notification, name="open"),
    path("<uuid:notification_id>/read/", views.mark_read, name="read"),
]
