"""Order pages. The dashboard is the site's home ("/", name "dashboard", no namespace); the order pages
live under /orders/ in the "orders" namespace."""

from django.urls import include, path

from . import views

order_patterns = (
    [
        path("", views.order_list, name="list"),
        path("new/", views.order_create, name="create"),
        path("lifecycle/", views.lifecycle_page, name="lifecycle"),
        path("<uuid:order_id>/", views.order_detail, name="detail"),
        path("<uuid:order_id>/edit/", views.order_edit, name="edit"),
        path("<uuid:order_id>/actions/<slug:name>/", views.order_transition, name="transition"),
        path("<uuid:order_id>/attachments/", views.order_upload, name="upload"),
        path(
            "<uuid:order_id>/attachments/<uuid:attachment_id>/",
            views.attachment_download,
            name="attachment",
        ),
    ],
    "orders",
)

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("orders/", include(order_patterns)),
]
