"""The password hasher (eoms.accounts.hashers): Argon2id at 12 MiB, t=3, p=1 (decision 0019)."""

import subprocess
import sys
import uuid

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher as DjangoArgon2
from django.contrib.auth.hashers import check_password, make_password
from django.test import Client

from eoms.accounts.hashers import Argon2PasswordHasher
from eoms.testing.factories import UserFactory

PASSWORD = "pass-word-123"

# The peak of the process's own memory (VmHWM starts afresh at exec; getrusage's ru_maxrss would not).
_PEAK = """
from argon2 import low_level

def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

before = peak_kb()
low_level.hash_secret(b"pass-word-123", b"sixteen-byte-slt", time_cost={t}, memory_cost={m}, parallelism={p},
                      hash_len=32, type=low_level.Type.ID)
print((peak_kb() - before) / 1024)
"""


def _peak_mb(hasher) -> float:
    """How much one hash with `hasher`'s parameters raises a fresh process's peak RSS, in MB."""
    code = _PEAK.format(t=hasher.time_cost, m=hasher.memory_cost, p=hasher.parallelism)
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


# ASVS V6.2.4 (passwords stored with an approved one-way key derivation function, with parameters per current guidance)
@pytest.mark.asvs("6.2.4")
def test_new_passwords_are_argon2id_with_owasps_parameters(real_password_hashers):
    encoded = make_password(PASSWORD)
    assert encoded.startswith("argon2$argon2id$v=19$m=12288,t=3,p=1$")
    assert check_password(PASSWORD, encoded) and not check_password("wrong", encoded)


def test_a_sign_in_costs_a_worker_about_12_mib_not_100():
    """The reason for the parameters: Django's own Argon2 settings made every sign-in allocate 100 MiB
    in the worker serving it (bench/memory.py)."""
    ours, djangos = _peak_mb(Argon2PasswordHasher()), _peak_mb(DjangoArgon2())
    assert 10 < ours < 17, ours
    assert djangos > 90, djangos


@pytest.mark.django_db
def test_a_hash_of_the_former_parameters_verifies_and_is_upgraded_at_sign_in(real_password_hashers):
    user = UserFactory(username=f"u{uuid.uuid4().hex[:12]}")
    user.password = DjangoArgon2().encode(PASSWORD, DjangoArgon2().salt())
    user.save(update_fields=["password"])
    assert "m=102400,t=2,p=8" in user.password
    response = Client().post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$v=19$m=12288,t=3,p=1$")
    assert check_password(PASSWORD, user.password)
