from django.contrib import admin
from django.urls import include, path

from eoms.api import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("eoms.accounts.web.urls")),
    path("", include("eoms.orders.web.urls")),
    path("masterdata/", include("eoms.masterdata.web.urls")),
    path("", include("eoms.core.web_urls")),
]
