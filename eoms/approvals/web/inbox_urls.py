"""The approver's pages (eoms.approvals.web.inbox), in the "approvals" namespace."""

from django.urls import path

from . import inbox

urlpatterns = [
    path("tasks/", inbox.inbox, name="inbox"),
    path("tasks/bulk/", inbox.bulk_decide, name="bulk"),
    path("tasks/<uuid:task_id>/", inbox.task_page, name="task"),
    path("tasks/<uuid:task_id>/<slug:action>/", inbox.task_action, name="task_action"),
    path("instances/<uuid:instance_id>/comment/", inbox.comment, name="comment"),
    path("instances/<uuid:instance_id>/withdraw/", inbox.withdraw, name="withdraw"),
    path("instances/<uuid:instance_id>/nudge/", inbox.nudge, name="nudge"),
    path("instances/<uuid:instance_id>/files/<uuid:attachment_id>/", inbox.attachment_download, name="attachment"),
    path("delegations/", inbox.delegations, name="delegations"),
    path("delegations/<uuid:delegation_id>/end/", inbox.delegation_end, name="delegation_end"),
]
