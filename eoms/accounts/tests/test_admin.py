"""Users edited in the back office are recorded in the audit chain like every other change."""

from django.contrib.auth.models import Group

from eoms.accounts.models import User
from eoms.core.audit import verify_chain
from eoms.core.models import AuditEntry, OutboxMessage


def _staff_admin(world):
    User.objects.filter(pk=world.admin.pk).update(is_staff=True)
    world.admin.refresh_from_db()
    return world.admin


def test_creating_and_editing_a_user_in_the_admin_is_audited(client, world):
    client.force_login(_staff_admin(world))
    audits = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    response = client.post(
        "/admin/accounts/user/add/",
        {
            "username": "newbie",
            "display_name": "新同事",
            "email": "newbie@example.com",
            "usable_password": "true",
            "password1": "Qx7-long-enough-pass",
            "password2": "Qx7-long-enough-pass",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    user = User.objects.get(username="newbie")
    created = AuditEntry.objects.filter(id__gt=audits).get()
    assert (created.action, created.object_id, created.actor_id) == (
        "accounts.user_created",
        str(user.id),
        world.admin.id,
    )
    assert created.changes["password1"] == "(changed)"
    assert "Qx7" not in str(created.changes) and user.password not in str(created.changes)

    change_url = f"/admin/accounts/user/{user.id}/change/"
    form = client.get(change_url).context["adminform"].form
    data = {
        k: v for k, v in form.initial.items() if v is not None and k not in ("groups", "user_permissions", "password")
    }
    data.update(
        display_name="新同事（已转正）",
        groups=[Group.objects.get(name="finance").pk],
        is_active="on",
        last_login_0="",
        last_login_1="",
        date_joined_0=user.date_joined.strftime("%Y-%m-%d"),
        date_joined_1=user.date_joined.strftime("%H:%M:%S"),
        org_unit="",
        language="",
        **{
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
        },
    )
    data.pop("last_login", None)
    data.pop("date_joined", None)
    response = client.post(change_url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entries = list(AuditEntry.objects.filter(id__gt=created.id).order_by("id"))
    assert [e.action for e in entries] == ["accounts.user_updated", "accounts.user_updated"]
    assert entries[0].changes == {"display_name": "新同事（已转正）"}
    assert entries[1].changes == {"roles": [[], ["finance"]]}
    assert OutboxMessage.objects.filter(event_type="accounts.user_updated").count() == 2
    assert verify_chain() is None


def test_users_cannot_be_deleted_in_the_admin(client, world):
    client.force_login(_staff_admin(world))
    response = client.post(f"/admin/accounts/user/{world.pm.id}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert User.objects.filter(pk=world.pm.pk).exists()


def test_createsuperuser_is_recorded_as_made_by_the_system(db):
    from django.core.management import call_command

    call_command("createsuperuser", interactive=False, username="root", email="root@example.com", verbosity=0)
    user = User.objects.get(username="root")
    entry = AuditEntry.objects.get(object_id=str(user.id))
    assert (entry.action, entry.actor_id, entry.actor_repr) == ("accounts.user_created", None, "system")
    assert entry.changes == {"is_superuser": True, "is_staff": True}
    assert OutboxMessage.objects.filter(event_type="accounts.user_created", aggregate_id=str(user.id)).count() == 1
