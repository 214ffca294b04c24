"""The notifications API: one's own inbox only, exact bodies, problem+json for the rest."""

import json
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from eoms.core.models import AuditEntry, OutboxMessage
from eoms.notifications.models import Notification, NotificationKind
from eoms.testing.matrix import IDENTITIES, REQUEST_EVENTS, client_for, perform, write_counts

from .api_matrix import BASE, ENDPOINTS

pytestmark = pytest.mark.django_db
CASES = [(key, identity) for key in sorted(ENDPOINTS) for identity in IDENTITIES]


def make(user, title="T", *, read=False, minutes_ago=0) -> Notification:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return Notification.objects.create(
        recipient=user,
        kind=NotificationKind.TASK_ASSIGNED,
        title=title,
        body=f"{title} body",
        url="/approvals/tasks/",
        message_id=uuid.uuid4(),
        event_type="approvals.task_created",
        created_at=at,
        read_at=at if read else None,
    )


def test_every_notifications_operation_has_a_matrix_entry_and_no_more(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    ours = {
        (method.upper(), path) for path, operations in paths.items() if path.startswith(BASE) for method in operations
    }
    assert set(ENDPOINTS) == ours
    # Each says who may call it.
    for path, operations in paths.items():
        if path.startswith(BASE):
            for operation in operations.values():
                assert operation["description"].startswith(
                    ("Who: any signed-in user, for their own notification", "Who: administrators only")
                )


@pytest.mark.parametrize(("key", "identity"), CASES, ids=lambda v: f"{v[0]} {v[1]}" if isinstance(v, tuple) else v)
def test_matrix_entry(world, key, identity):
    method, _ = key
    entry = ENDPOINTS[key]
    request = entry["request"](world)
    before = write_counts()
    response = perform(client_for(world, identity), method, request)
    expected = entry["expect"][identity]
    assert response.status_code == expected, response.content[:300]
    if expected >= 400:
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == expected
    if expected >= 400 or method == "GET":
        assert write_counts() == before
    # Reading and marking one's inbox is not audited; a change of settings is, once, and so is each
    # delivery an administrator sends again or discards (one in each request here).
    audited = 1 if expected == 200 and (method == "PUT" or (method == "POST" and "/deliveries/" in key[1])) else 0
    assert AuditEntry.objects.exclude(action__in=REQUEST_EVENTS).count() == before[AuditEntry._meta.label] + audited
    assert OutboxMessage.objects.count() == before[OutboxMessage._meta.label]


def test_list_is_mine_newest_first_with_unread_filter(world):
    old = make(world.pm, "old", read=True, minutes_ago=10)
    new = make(world.pm, "new", minutes_ago=1)
    make(world.approver, "someone else's")
    client = client_for(world, "project_manager")
    body = client.get(BASE).json()
    assert body["count"] == 2
    assert body["unread"] == 1
    assert [r["title"] for r in body["results"]] == ["new", "old"]
    first = dict(body["results"][0])
    created = parse_datetime(first.pop("created_at"))
    assert abs(created - new.created_at) < timedelta(milliseconds=1)
    assert first == {
        "id": str(new.pk),
        "kind": "task_assigned",
        "kind_label": "Approval task assigned to me",
        "title": "new",
        "body": "new body",
        "url": "/approvals/tasks/",
        "read_at": None,
    }
    assert body["results"][1]["read_at"] is not None
    unread = client.get(BASE, {"unread": "true"}).json()
    assert [r["id"] for r in unread["results"]] == [str(new.pk)]
    assert client.get(f"{BASE}/unread-count").json() == {"unread": 1}
    assert old.pk  # read ones stay listed


def test_user_a_cannot_read_or_mark_user_bs(world):
    mine = make(world.approver, "approver's")
    client = client_for(world, "project_manager")
    assert all(r["id"] != str(mine.pk) for r in client.get(BASE).json()["results"])
    response = client.post(f"{BASE}/{mine.pk}/read")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "notification.not_found"
    # Marking all of one's own leaves the other user's alone.
    assert client.post(f"{BASE}/read-all").json() == {"marked": 0}
    mine.refresh_from_db()
    assert mine.read_at is None


def test_mark_read_keeps_the_first_read_time_and_read_all_counts(world):
    a, b, c = make(world.pm, "a"), make(world.pm, "b"), make(world.pm, "c")
    client = client_for(world, "project_manager")
    first = client.post(f"{BASE}/{a.pk}/read").json()
    assert first["id"] == str(a.pk) and first["read_at"] is not None
    again = client.post(f"{BASE}/{a.pk}/read").json()
    assert again["read_at"] == first["read_at"]
    assert client.get(f"{BASE}/unread-count").json() == {"unread": 2}
    assert client.post(f"{BASE}/read-all").json() == {"marked": 2}
    assert client.get(f"{BASE}/unread-count").json() == {"unread": 0}
    assert Notification.objects.filter(pk__in=[b.pk, c.pk], read_at__isnull=True).count() == 0


def test_malformed_and_unknown_ids(world):
    client = client_for(world, "project_manager")
    assert client.post(f"{BASE}/{uuid.uuid4()}/read").status_code == 404
    assert client.post(f"{BASE}/not-a-uuid/read").status_code == 422


def test_a_token_reaches_only_its_users_inbox(world):
    from eoms.accounts.services import issue_api_token

    make(world.pm, "pm's")
    make(world.approver, "approver's")
    _token, secret = issue_api_token(actor=world.approver, name="bot")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    body = client.get(BASE).json()
    assert [r["title"] for r in body["results"]] == ["approver's"]
    assert json.loads(client.get(f"{BASE}/unread-count").content) == {"unread": 1}
