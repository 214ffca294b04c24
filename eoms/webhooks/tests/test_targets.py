"""SSRF: internal targets refused when a webhook is saved and again when it is delivered (DNS
rebinding), and the request goes to the address that was checked. DNS is outside our reach: where a
test needs a name to resolve somewhere in particular, socket.getaddrinfo is replaced for that name."""

import socket

import pytest

from eoms.core.models import AuditEntry
from eoms.webhooks.errors import TargetRefused
from eoms.webhooks.models import Delivery, DeliveryState, Subscription
from eoms.webhooks.services import create_subscription, update_subscription
from eoms.webhooks.targets import check_target

from .test_delivery import deliver_events

pytestmark = pytest.mark.django_db

INTERNAL = [
    "https://127.0.0.1/hook",
    "https://127.8.9.10/hook",
    "https://10.1.2.3/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[fe80::1]/hook",
    "https://[fd00::1]/hook",
    "https://0.0.0.0/hook",
    "https://[::]/hook",
    "https://224.0.0.1/hook",
    "https://240.0.0.1/hook",
    "https://100.64.0.1/hook",
    "https://localhost/hook",
    "https://localhost:8443/hook",
]
NEVER = ["https://0.0.0.0/", "https://[::]/", "https://224.0.0.1/", "https://[ff02::1]/", "https://240.0.0.1/"]


@pytest.fixture
def dns(monkeypatch):
    """Names of our choosing resolve to addresses of our choosing; every other name as usual."""
    answers: dict[str, list[str]] = {}
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            asked.append(host)
            family = {True: socket.AF_INET6, False: socket.AF_INET}
            return [(family[":" in a], socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    answers["asked"] = asked  # type: ignore[assignment]
    return answers


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_targets_are_refused_when_saved(world, url):
    with pytest.raises(TargetRefused) as caught:
        create_subscription(actor=world.admin, target_url=url, event_types=["*"])
    assert caught.value.code == "webhook.target_refused"
    assert caught.value.errors[0]["field"] == "target_url"
    assert "internal address" in caught.value.errors[0]["message"]
    assert Subscription.objects.count() == 0
    assert not AuditEntry.objects.filter(action__startswith="webhooks.").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://93.184.216.34/hook", "The target must use https."),
        ("ftp://93.184.216.34/hook", "Enter a valid https URL."),
        ("https://user:pw@93.184.216.34/hook", "A target URL may not contain a user name or password."),
        ("https://no-such-host.invalid/hook", "The host name of the target does not resolve."),
    ],
)
def test_other_targets_refused(world, url, message):
    with pytest.raises(TargetRefused) as caught:
        create_subscription(actor=world.admin, target_url=url, event_types=["*"])
    assert caught.value.errors == [{"field": "target_url", "message": message}]


def test_a_public_address_is_accepted(world):
    target = check_target("https://93.184.216.34:8443/in?a=b")
    assert (target.scheme, target.host, target.port, target.path, target.address) == (
        "https",
        "93.184.216.34",
        8443,
        "/in?a=b",
        "93.184.216.34",
    )


def test_a_name_with_any_internal_address_is_refused(world, dns):
    dns["mixed.example.test"] = ["93.184.216.34", "10.0.0.7"]
    with pytest.raises(TargetRefused) as caught:
        check_target("https://mixed.example.test/")
    assert "10.0.0.7" in caught.value.errors[0]["message"]


def test_allowing_private_targets_allows_loopback_private_and_link_local_only(allow_private):
    for url, address in (
        ("http://127.0.0.1:9/", "127.0.0.1"),
        ("https://10.1.2.3/", "10.1.2.3"),
        ("https://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),
        ("https://169.254.1.1/", "169.254.1.1"),
    ):
        assert check_target(url).address == address
    for url in NEVER:
        with pytest.raises(TargetRefused):
            check_target(url)
    with pytest.raises(TargetRefused) as caught:
        check_target("http://93.184.216.34/")
    assert caught.value.errors[0]["message"] == "The target must use https."


def test_delivery_checks_again_and_refuses_when_private_targets_are_no_longer_allowed(world, receiver, allow_private):
    deliver_events()
    create_subscription(actor=world.admin, target_url=receiver.url, event_types=["orders.order_created"])
    allow_private.WEBHOOKS_ALLOW_PRIVATE = False
    allow_private.WEBHOOKS_MAX_ATTEMPTS = 1
    world.order()
    assert deliver_events()["failed"] == 1
    assert receiver.requests == []
    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.FAILED
    assert delivery.last_error == "The target must use https."
    attempt = delivery.attempt_log.get()
    assert (attempt.status_code, attempt.succeeded) == (None, False)


def test_dns_rebinding_reaches_nothing(world, receiver, dns, settings):
    """Saved while the name resolved to a public address; at delivery it resolves to loopback."""
    deliver_events()
    dns["hooks.example.test"] = ["93.184.216.34"]
    subscription, _ = create_subscription(
        actor=world.admin, target_url="https://hooks.example.test/in", event_types=["orders.order_created"]
    )
    dns["hooks.example.test"] = ["127.0.0.1"]
    world.order()
    assert deliver_events()["retry"] == 1
    delivery = Delivery.objects.get()
    assert delivery.last_error == ("The target resolves to an internal address (127.0.0.1); webhooks may not call it.")
    assert receiver.requests == []
    with pytest.raises(TargetRefused):
        update_subscription(actor=world.admin, subscription_id=subscription.pk, target_url="https://localhost/x")


def test_the_request_goes_to_the_address_checked_without_resolving_again(world, receiver, dns, allow_private):
    deliver_events()
    dns["receiver.example.test"] = ["127.0.0.1"]
    create_subscription(
        actor=world.admin,
        target_url=f"http://receiver.example.test:{receiver.port}/in",
        event_types=["orders.order_created"],
    )
    dns["asked"].clear()
    world.order()
    assert deliver_events()["delivered"] == 1
    assert dns["asked"] == ["receiver.example.test"]  # once, by the check; the connection used its answer
    (request,) = receiver.requests
    assert request["headers"]["Host"] == f"receiver.example.test:{receiver.port}"
    assert request["path"] == "/in"
