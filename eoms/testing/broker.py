"""Tests against the real RabbitMQ (127.0.0.1:5672, guest/guest; BROKER_TEST_URL overrides).

Each test gets a namespace of its own ("eomstest-<random>"), so its exchange and queues are its own:
tests running in parallel (pytest-xdist) never see each other's messages. The fixture deletes them.
"""

import os
import uuid

import kombu

from eoms.core import broker

__all__ = ["BROKER_TEST_URL", "use_test_broker", "queue_depth", "take_all"]

BROKER_TEST_URL = os.environ.get("BROKER_TEST_URL", "amqp://guest:guest@127.0.0.1:5672//")


def use_test_broker(settings):
    """For a fixture (`yield from use_test_broker(settings)`): BROKER_URL set to the test broker with
    a namespace of this test's own (fast retries: 3 attempts, 50 ms then 200 ms); its topology is
    deleted afterwards."""
    settings.BROKER_URL = BROKER_TEST_URL
    settings.BROKER_NAMESPACE = f"eomstest-{uuid.uuid4().hex[:12]}"
    settings.BROKER_MAX_ATTEMPTS = 3
    settings.BROKER_RETRY_DELAY = 0.05
    settings.BROKER_CONFIRM_TIMEOUT = 10.0
    settings.BROKER_PREFETCH = 8
    topo = broker.topology()
    yield settings
    for transport in list(broker._shared.values()):
        transport.close()
    broker._shared.clear()
    conn = broker.connect(BROKER_TEST_URL)
    try:
        topo.delete(conn.channel())
    finally:
        conn.release()


def queue_depth(name: str) -> int:
    """Messages ready in a queue (0 when it does not exist)."""
    conn = broker.connect(BROKER_TEST_URL)
    try:
        channel = conn.channel()
        try:
            return channel.queue_declare(name, passive=True).message_count
        except Exception:
            return 0
    finally:
        conn.release()


def take_all(name: str) -> list[kombu.Message]:
    """Every message now in a queue, in queue order, acked (removed)."""
    conn = broker.connect(BROKER_TEST_URL)
    taken = []
    try:
        channel = conn.channel()
        while True:
            message = channel.basic_get(name, no_ack=True)
            if message is None:
                return taken
            taken.append(message)
    finally:
        conn.release()
