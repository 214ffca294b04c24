"""The bell in the page header, the inbox page, and the dead-letter link of the navigation."""

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from eoms.notifications.models import Notification, NotificationKind

pytestmark = pytest.mark.django_db
BELL = re.compile(r'<span class="badge[^"]*" id="nav-notification-count">(\d+)</span>')


def make(user, title="T", *, url="/orders/", read=False) -> Notification:
    return Notification.objects.create(
        recipient=user,
        kind=NotificationKind.ORDER_TRANSITIONED,
        title=title,
        body=f"{title} body",
        url=url,
        message_id=uuid.uuid4(),
        event_type="orders.order_transitioned",
        created_at=timezone.now(),
        read_at=timezone.now() if read else None,
    )


@pytest.fixture
def pm(client, world):
    client.force_login(world.pm)
    return client


def bell(response) -> int | None:
    found = BELL.search(response.content.decode())
    return int(found.group(1)) if found else None


def test_the_bell_counts_my_unread_notifications_on_every_page(pm, world):
    make(world.pm, "one")
    make(world.pm, "two")
    make(world.pm, "read", read=True)
    make(world.approver, "not mine")
    for path in ("/", "/orders/", "/approvals/tasks/", "/masterdata/projects/", "/notifications/"):
        response = pm.get(path)
        assert response.status_code == 200, path
        assert bell(response) == 2, path
        assert 'href="/notifications/"' in response.content.decode()


def test_no_unread_no_badge(pm, world):
    make(world.pm, "read", read=True)
    response = pm.get("/")
    assert bell(response) is None
    assert 'id="nav-notifications"' in response.content.decode()


def test_the_bell_costs_one_count_query(pm, world):
    make(world.pm)
    with CaptureQueriesContext(connection) as queries:
        pm.get("/orders/")
    ours = [q["sql"] for q in queries.captured_queries if "notifications_notification" in q["sql"]]
    assert len(ours) == 1
    assert ours[0].upper().startswith("SELECT COUNT(")


def test_the_inbox_lists_mine_only_and_filters_unread(pm, world):
    make(world.pm, "标题一")
    make(world.pm, "already read", read=True)
    make(world.approver, "someone else's")
    page = pm.get("/notifications/").content.decode()
    assert "标题一" in page and "already read" in page
    assert "someone else" not in page
    unread = pm.get("/notifications/?show=unread").content.decode()
    assert "标题一" in unread and "already read" not in unread


def test_opening_marks_read_and_goes_to_the_object(pm, world):
    n = make(world.pm, url="/orders/")
    response = pm.post(f"/notifications/{n.pk}/open/")
    assert response.status_code == 302
    assert response["Location"] == "/orders/"
    n.refresh_from_db()
    assert n.read_at is not None
    assert bell(pm.get("/")) is None


def test_an_outside_link_is_never_followed(pm, world):
    n = make(world.pm, url="https://evil.example/")
    response = pm.post(f"/notifications/{n.pk}/open/")
    assert response["Location"] == "/notifications/"


def test_mark_one_and_all_read(pm, world):
    a, b, c = make(world.pm, "a"), make(world.pm, "b"), make(world.pm, "c")
    response = pm.post(f"/notifications/{a.pk}/read/", {"next": "/notifications/?show=unread"})
    assert response["Location"] == "/notifications/?show=unread"
    assert bell(pm.get("/")) == 2
    response = pm.post("/notifications/read-all/", follow=True)
    assert "2 notifications marked read." in response.content.decode()
    assert Notification.objects.filter(recipient=world.pm, read_at__isnull=True).count() == 0
    assert {b.pk, c.pk} <= set(Notification.objects.filter(read_at__isnull=False).values_list("pk", flat=True))


def test_another_users_notification_is_404_and_stays_unread(pm, world):
    theirs = make(world.approver)
    assert pm.post(f"/notifications/{theirs.pk}/open/").status_code == 404
    assert pm.post(f"/notifications/{theirs.pk}/read/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_the_pages_need_sign_in_and_posts(client, world):
    assert client.get("/notifications/").status_code == 302
    client.force_login(world.pm)
    n = make(world.pm)
    assert client.get(f"/notifications/{n.pk}/open/").status_code == 405


def test_the_inbox_speaks_chinese(pm, world):
    make(world.pm)
    page = pm.get("/notifications/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert '<h2 class="page-title">通知</h2>' in page
    assert "全部标为已读" in page
    assert 'aria-label="1 条未读通知"' in page


@pytest.mark.parametrize(("identity", "shown"), [("admin", True), ("auditor", False), ("project_manager", False)])
def test_the_dead_letter_link_is_for_administrators(client, world, identity, shown):
    client.force_login(world.by_role[identity])
    page = client.get("/").content.decode()
    assert ('href="/dead-letters/" id="nav-dead-letters"' in page) is shown
