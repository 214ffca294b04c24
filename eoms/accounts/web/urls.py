from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import security, views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]

app_urls = (
    [
        path("profile/", views.profile, name="profile"),
        path("profile/tokens/<uuid:token_id>/revoke/", views.revoke_token, name="revoke_token"),
        path("profile/password/", security.change_password, name="change_password"),
        path("profile/email/", security.change_email, name="change_email"),
        path("two-factor/code/", security.verify, name="two_factor_verify"),
        path("two-factor/setup/", security.enrol, name="two_factor_enrol"),
        path("two-factor/recovery-codes/", security.renew_recovery_codes, name="two_factor_recovery_codes"),
        path("two-factor/disable/", security.disable, name="two_factor_disable"),
    ],
    "accounts",
)

urlpatterns += [path("accounts/", include(app_urls))]
