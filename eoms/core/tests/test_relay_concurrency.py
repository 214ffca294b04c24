"""Several relays at once: on PostgreSQL and MariaDB two relays claim disjoint batches (SKIP LOCKED)
and publish every aggregate's messages in order, each message once; on SQLite one relay runs at a
time (a lock file beside the database)."""

import os
import subprocess
import sys
import threading
from collections import defaultdict
from dataclasses import dataclass

import pytest
from django.db import connection, transaction

from eoms.core import broker, relay
from eoms.core.events import DomainEvent, emit
from eoms.core.models import OutboxMessage
from eoms.testing.broker import take_all, use_test_broker
from eoms.testing.concurrency import race

SERVER = connection.vendor in ("postgresql", "mysql")


@dataclass(frozen=True, kw_only=True)
class Stacked(DomainEvent):
    event_type = "test.stacked"
    aggregate_type = "test.pile"
    aggregate_field = "pile"
    pile: str
    n: int


@pytest.fixture
def broker_settings(settings):
    yield from use_test_broker(settings)


@pytest.mark.broker
@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not SERVER, reason="needs a server database (PostgreSQL or MariaDB)")
def test_two_relays_share_the_outbox_in_order_per_aggregate(broker_settings):
    piles, per_pile = 12, 100
    with transaction.atomic():
        for n in range(per_pile):
            for p in range(piles):
                emit(Stacked(pile=f"P{p}", n=n), actor=None)
    ids = dict(OutboxMessage.objects.values_list("message_id", "id"))
    assert len(ids) == piles * per_pile
    passes: list[list[int]] = [[], []]

    def run(i):
        # Each relay its own connection to the broker and to the database, small batches so that
        # they overlap: one holds rows the other must skip, and aggregates the other must wait for.
        transport = broker.BrokerTransport()
        try:
            while OutboxMessage.objects.filter(sent_at__isnull=True).exists():
                passes[i].append(relay.relay_once(transport, batch=40))
        finally:
            transport.close()
        return sum(passes[i])

    delivered = race(2, run)
    assert all(isinstance(n, int) for n in delivered), delivered
    assert sum(delivered) == piles * per_pile  # each message published by exactly one relay
    assert min(delivered) > 0, f"one relay did all the work: {delivered}"
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0
    assert set(OutboxMessage.objects.values_list("attempts", flat=True)) == {1}

    arrived = take_all(broker.topology().handlers_queue)
    assert len(arrived) == piles * per_pile
    by_pile = defaultdict(list)
    for message in arrived:
        event = broker.decode(message.body)
        by_pile[event.payload["pile"]].append(event.payload["n"])
    # In the queue, every pile's messages are in the order they were written, none twice.
    assert dict(by_pile) == {f"P{p}": list(range(per_pile)) for p in range(piles)}


@dataclass(frozen=True, kw_only=True)
class _Probe(DomainEvent):
    event_type = "test.probe"
    aggregate_type = "test.probe"
    aggregate_field = "key"
    key: str


@pytest.mark.skipif(SERVER, reason="the SQLite relay lock")
def test_one_relay_at_a_time_on_sqlite(db):
    with transaction.atomic():
        emit(_Probe(key="k"), actor=None)
    held = threading.Event()
    release = threading.Event()

    def hold():
        with relay._single_relay() as allowed:
            assert allowed
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(10)
        assert relay.relay_once() == 0  # another relay has the database
    finally:
        release.set()
        thread.join(10)
    assert relay.relay_once() == 1


def _eoms(data_dir, *args, check=True) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    env.update(EOMS_DATA_DIR=str(data_dir), DATABASE_URL=f"sqlite:///{data_dir}/eoms.sqlite3")
    result = subprocess.run(
        [sys.executable, "-m", "eoms.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result.stdout


EMIT_ONE = """
from django.db import transaction
from eoms.core.tests.test_relay_concurrency import _Probe
from eoms.core.events import emit
with transaction.atomic():
    emit(_Probe(key="k"), actor=None)
"""


@pytest.mark.embedded
def test_the_sqlite_lock_file_keeps_a_second_relay_out_until_its_holder_dies(tmp_path):
    _eoms(tmp_path, "migrate", "-v0")
    _eoms(tmp_path, "shell", "-c", EMIT_ONE)
    # Another relay (here a process that only takes the lock) holds the database.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, time\n"
            f"fd = os.open({str(tmp_path / 'eoms.sqlite3.relay-lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        # Sealing the audit entry needs no relay lock: only delivering waits.
        assert _eoms(tmp_path, "relay", "--once") == "delivered 0 message(s); sealed 1 audit entries\n"
        holder.kill()  # SIGKILL: the lock goes with the process
        holder.wait(10)
        assert _eoms(tmp_path, "relay", "--once") == "delivered 1 message(s); sealed 0 audit entries\n"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
