"""Pages of the shared kernel, without a namespace: the audit browser and the dead letters; and
/favicon.ico, which browsers ask for on their own, sent to the icon among the static files."""

from django.templatetags.static import static
from django.urls import path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from . import dead_letter_views, web_views

urlpatterns = [
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("eoms/favicon.svg"), permanent=True)),
    path("audit/", web_views.audit_log, name="audit"),
    path("audit/verify/", web_views.audit_verify, name="audit_verify"),
    path("dead-letters/", dead_letter_views.dead_letter_list, name="dead_letters"),
    path("dead-letters/<uuid:dead_letter_id>/replay/", dead_letter_views.dead_letter_replay, name="dead_letter_replay"),
    path(
        "dead-letters/<uuid:dead_letter_id>/discard/", dead_letter_views.dead_letter_discard, name="dead_letter_discard"
    ),
]
