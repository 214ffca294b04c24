"""Approval pages under /approvals/ in the "approvals" namespace: the flow editor (definition_urls)
and the task inbox, task and delegation pages (inbox_urls)."""

from . import definition_urls, inbox_urls

app_name = "approvals"
urlpatterns = [*definition_urls.urlpatterns, *inbox_urls.urlpatterns]
