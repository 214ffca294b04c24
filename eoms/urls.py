from django.contrib import admin
from django.urls import include, path

from eoms.api import api
from eoms.core import health, metrics

urlpatterns = [
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("", include("eoms.accounts.web.urls")),
    path("", include("eoms.orders.web.urls")),
    path("masterdata/", include("eoms.masterdata.web.urls")),
    path("approvals/", include("eoms.approvals.web.urls")),
    path("notifications/", include("eoms.notifications.web.urls")),
    path("webhooks/", include("eoms.webhooks.web.urls")),
    path("", include("eoms.oauth.urls")),
    path("", include("eoms.core.web_urls")),
]
