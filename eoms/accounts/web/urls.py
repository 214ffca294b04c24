from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]

app_urls = (
    [
        path("profile/", views.profile, name="profile"),
        path("profile/tokens/<uuid:token_id>/revoke/", views.revoke_token, name="revoke_token"),
    ],
    "accounts",
)

urlpatterns += [path("accounts/", include(app_urls))]
