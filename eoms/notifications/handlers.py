"""Who is told what, from the events of approvals and orders (subscribed through the relay, so the
same handlers run in-process in embedded mode and in `eoms worker` with a broker).

- approvals.task_created: the assignee ("on behalf of" the delegating user when there is one);
- approvals.task_reminded (the flow's SLA reminder) and approvals.approval_nudged (催办 by the
  initiator): the assignees of the tasks named, as told of them by task_created;
- approvals.task_decided: the approval's initiator, unless they decided it themselves;
- approvals.approval_completed: the initiator;
- approvals.cc_sent: each user copied;
- orders.order_transitioned: the order's new stage owner and the project's managers, not whoever
  made the change;
- approvals.approval_withdrawn: the assignees whose tasks were still waiting for them (as told of
  them by task_created), not whoever withdrew it;
- approvals.step_timed_out: the approval's initiator, saying what the flow's rule did;
- webhooks.subscription_paused: the webhook's owner.
(Stage deadlines near and past have no event: reminders.py, a periodic job.)

A notification names the object by its number and title as the event carries them, its state and
who acted; never amounts, comments, attachments or encrypted fields.
"""

import uuid
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from eoms.accounts.roles import ProjectRole
from eoms.accounts.selectors import members_with_role
from eoms.approvals.selectors import TaskFilters, instances_of, list_tasks
from eoms.approvals.subjects import get_adapter
from eoms.core.relay import handles
from eoms.orders.state import OrderState

from .models import Notification, NotificationKind
from .services import Rendered, notify

__all__ = [
    "on_task_created",
    "on_task_reminded",
    "on_task_decided",
    "on_approval_completed",
    "on_cc_sent",
    "on_order_transitioned",
    "on_approval_withdrawn",
    "on_step_timed_out",
    "on_subscription_paused",
]


def _users(ids) -> list:
    wanted = []
    for value in ids:
        try:
            wanted.append(uuid.UUID(str(value)))
        except (TypeError, ValueError):
            continue
    if not wanted:
        return []
    found = {u.pk: u for u in get_user_model().objects.filter(pk__in=wanted, is_active=True)}
    return [found[pk] for pk in wanted if pk in found]


def _user(value):
    found = _users([value]) if value else []
    return found[0] if found else None


def _name(user) -> str:
    return (user.display_name or user.username) if user else _("The system")


def _subject_url(payload: dict) -> str:
    try:
        return get_adapter(payload["subject_type"]).load(payload["subject_id"]).url
    except Exception:  # the object is gone or its type unknown: the notification has no link
        return ""


def _task_url(task_id) -> str:
    try:
        return reverse("approvals:task", args=[task_id])
    except NoReverseMatch:
        return ""


def _initiator(payload: dict):
    instance = instances_of(payload["subject_type"], payload["subject_id"]).filter(pk=payload["instance_id"]).first()
    return instance.initiator if instance is not None and instance.initiator.is_active else None


def _when(value: str | None) -> str:
    moment = parse_datetime(value) if value else None
    if moment is None:
        return ""
    # One unambiguous form in every language (locale formats drop ":00" and say "noon").
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


@handles("approvals.task_created", name="notifications.task_created")
def on_task_created(message) -> None:
    p = message.payload
    assignee = _user(p["assignee_id"])
    behalf = _user(p.get("on_behalf_of_id")) if p.get("on_behalf_of_id") else None
    url = _task_url(p["task_id"])

    def render(user) -> Rendered:
        body = _("%(subject)s is waiting for your decision.") % {"subject": p["subject_repr"]}
        if behalf is not None:
            body += " " + _("You decide on behalf of %(user)s, who is away.") % {"user": _name(behalf)}
        due = _when(p.get("due_at"))
        if due:
            body += " " + _("Due by %(time)s.") % {"time": due}
        return Rendered(_("Approval needed: %(subject)s") % {"subject": p["subject_repr"]}, body, url)

    notify(message=message, recipients=[assignee], kind=NotificationKind.TASK_ASSIGNED, render=render)


def _assignees(task_ids) -> dict:
    """{user: their task's page} for whoever was told of these tasks when they were created (our
    own rows: approvals' public surface has no unscoped read of a task, and task_created told us
    the assignee)."""
    urls = [u for u in (_task_url(t) for t in task_ids) if u]
    told = dict(
        Notification.objects.filter(kind=NotificationKind.TASK_ASSIGNED, url__in=urls).values_list(
            "recipient_id", "url"
        )
    )
    return {user: told[user.pk] for user in _users(told)}


@handles("approvals.task_reminded", "approvals.approval_nudged", name="notifications.task_reminded")
def on_task_reminded(message) -> None:
    p = message.payload
    assignees = _assignees(p["task_ids"])
    nudger = _user(message.actor_id) if message.event_type == "approvals.approval_nudged" else None

    def render(user) -> Rendered:
        values = {"subject": p["subject_repr"], "user": _name(nudger)}
        title = _("Reminder: %(subject)s") % values
        if nudger is not None:
            body = _("%(user)s asks you to decide on %(subject)s.") % values
        else:
            body = _("%(subject)s is still waiting for your decision.") % values
        return Rendered(title, body, assignees[user])

    notify(message=message, recipients=list(assignees), kind=NotificationKind.TASK_REMINDER, render=render)


@handles("approvals.task_decided", name="notifications.task_decided")
def on_task_decided(message) -> None:
    p = message.payload
    initiator = _initiator(p)
    actor = None if p.get("by_system") else _user(message.actor_id)
    if initiator is None or (actor is not None and actor.pk == initiator.pk):
        return
    url = _subject_url(p)

    def render(user) -> Rendered:
        values = {"user": _name(actor), "subject": p["subject_repr"]}
        if p["decision"] == "approve":
            title = _("Approved by %(user)s: %(subject)s") % values
            body = _("%(user)s approved %(subject)s at their step.") % values
        elif p["decision"] == "return":
            title = _("Returned by %(user)s: %(subject)s") % values
            body = _("%(user)s sent %(subject)s back for revision.") % values
        else:
            title = _("Rejected by %(user)s: %(subject)s") % values
            body = _("%(user)s rejected %(subject)s.") % values
        return Rendered(title, body, url)

    notify(message=message, recipients=[initiator], kind=NotificationKind.TASK_DECIDED, render=render)


@handles("approvals.approval_completed", name="notifications.approval_completed")
def on_approval_completed(message) -> None:
    p = message.payload
    initiator = _initiator(p)
    url = _subject_url(p)

    def render(user) -> Rendered:
        values = {"subject": p["subject_repr"]}
        if p["outcome"] == "approved":
            return Rendered(
                _("Approval passed: %(subject)s") % values,
                _("The approval of %(subject)s has ended: approved.") % values,
                url,
            )
        return Rendered(
            _("Approval rejected: %(subject)s") % values,
            _("The approval of %(subject)s has ended: rejected.") % values,
            url,
        )

    notify(message=message, recipients=[initiator], kind=NotificationKind.APPROVAL_COMPLETED, render=render)


@handles("approvals.cc_sent", name="notifications.cc_sent")
def on_cc_sent(message) -> None:
    p = message.payload
    recipients = _users(p["user_ids"])

    def render(user) -> Rendered:
        # The user's CC task page: they can always open it, even without access to the project.
        task = list_tasks(actor=user, filters=TaskFilters(box="cc")).filter(instance_id=p["instance_id"]).first()
        url = _task_url(task.pk) if task is not None else _subject_url(p)
        values = {"subject": p["subject_repr"]}
        return Rendered(
            _("For your information: %(subject)s") % values,
            _("You were copied on the approval of %(subject)s.") % values,
            url,
        )

    notify(message=message, recipients=recipients, kind=NotificationKind.CC_RECEIVED, render=render)


@handles("orders.order_transitioned", name="notifications.order_transitioned")
def on_order_transitioned(message) -> None:
    p = message.payload
    actor = _user(message.actor_id)
    recipients = []
    if p.get("stage_owner_id"):
        recipients += _users([p["stage_owner_id"]])
    recipients += list(members_with_role(p["project_id"], ProjectRole.PM).filter(is_active=True))
    recipients = [u for u in recipients if actor is None or u.pk != actor.pk]
    try:
        url = reverse("orders:detail", args=[p["order_id"]])
    except NoReverseMatch:
        url = ""

    def render(user) -> Rendered:
        values = {
            "number": p["number"],
            "user": _name(actor),
            "from": _state(p["from_state"]),
            "to": _state(p["to_state"]),
        }
        return Rendered(
            _("%(number)s is now %(to)s") % values,
            _("%(user)s moved order %(number)s from %(from)s to %(to)s.") % values,
            url,
        )

    notify(message=message, recipients=recipients, kind=NotificationKind.ORDER_TRANSITIONED, render=render)


def _state(value: str) -> str:
    try:
        return str(OrderState(value).label)
    except ValueError:
        return value


@handles("approvals.approval_withdrawn", name="notifications.approval_withdrawn")
def on_approval_withdrawn(message) -> None:
    p = message.payload
    instance = instances_of(p["subject_type"], p["subject_id"]).filter(pk=p["instance_id"]).first()
    if instance is None or instance.finished_at is None:
        return
    # The tasks the withdrawal closed (closed at the moment it ended the instance); of those, the
    # ones whose assignee was told of them (pending ones: waiting tasks were never announced).
    closed = instance.tasks.filter(state="cancelled", decided_at=instance.finished_at).values_list("pk", flat=True)
    assignees = _assignees(list(closed))
    actor = _user(message.actor_id)
    recipients = [u for u in assignees if actor is None or u.pk != actor.pk]
    url = _subject_url(p)

    def render(user) -> Rendered:
        values = {"subject": p["subject_repr"], "user": _name(actor)}
        return Rendered(
            _("Withdrawn: %(subject)s") % values,
            _("%(user)s withdrew the approval of %(subject)s; it no longer needs your decision.") % values,
            url,
        )

    notify(message=message, recipients=recipients, kind=NotificationKind.APPROVAL_WITHDRAWN, render=render)


def _step_name(payload: dict) -> str:
    instance = instances_of(payload["subject_type"], payload["subject_id"]).filter(pk=payload["instance_id"]).first()
    step = instance.steps.filter(node_id=payload["node_id"]).order_by("-started_at").first() if instance else None
    return step.node_name if step is not None else payload["node_id"]


@handles("approvals.step_timed_out", name="notifications.step_timed_out")
def on_step_timed_out(message) -> None:
    p = message.payload
    initiator = _initiator(p)
    url = _subject_url(p)
    step = _step_name(p)

    def render(user) -> Rendered:
        values = {"subject": p["subject_repr"], "step": step}
        outcomes = {
            "approve": _("The step “%(step)s” of %(subject)s timed out and was approved automatically."),
            "reject": _("The step “%(step)s” of %(subject)s timed out and was rejected automatically."),
            "escalate": _("The step “%(step)s” of %(subject)s timed out and was escalated to the manager."),
        }
        body = outcomes.get(
            p["action"], _("The step “%(step)s” of %(subject)s timed out; its approvers were reminded.")
        )
        return Rendered(_("Timed out: %(subject)s") % values, body % values, url)

    notify(message=message, recipients=[initiator], kind=NotificationKind.APPROVAL_TIMED_OUT, render=render)


@handles("webhooks.subscription_paused", name="notifications.subscription_paused")
def on_subscription_paused(message) -> None:
    p = message.payload
    owner = _user(p["owner_id"])
    try:
        url = reverse("webhooks:detail", args=[p["id"]])
    except NoReverseMatch:
        url = ""

    def render(user) -> Rendered:
        # The target's host only: its path or query may hold a receiver's token.
        values = {"target": urlsplit(p["target_url"]).hostname or "", "count": p["consecutive_failures"]}
        return Rendered(
            _("Webhook paused: %(target)s") % values,
            _(
                "Your webhook to %(target)s was paused: its deliveries kept failing (%(count)s in a row). "
                "Fix the receiver, then resume it: the deliveries waiting go out then."
            )
            % values,
            url,
        )

    notify(message=message, recipients=[owner], kind=NotificationKind.WEBHOOK_PAUSED, render=render)
