"""Pages of the shared kernel, without a namespace: the audit browser."""

from django.urls import path

from . import web_views

urlpatterns = [
    path("audit/", web_views.audit_log, name="audit"),
    path("audit/verify/", web_views.audit_verify, name="audit_verify"),
]
