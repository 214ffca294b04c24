"""`eoms backup` / `eoms restore` on a real data directory, each command in its own process as an operator runs it."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

EOMS = str(Path(sys.executable).with_name("eoms"))
CREATE_USER = (
    "from eoms.accounts.services import create_user; "
    "create_user(actor=None, username='{}', password='Correct-horse-9', display_name='Keeper')"
)
LIST_USERS = "from eoms.accounts.models import User; print(sorted(User.objects.values_list('username', flat=True)))"


def _eoms(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EOMS, *args], env=env, capture_output=True, text=True, timeout=120)


def _env(data: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EOMS_") and k != "DATABASE_URL"}
    env.update({"EOMS_DATA_DIR": str(data), "EOMS_RELAY_IN_PROCESS": "false"})
    return env


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A data directory migrated once for the module (each migration is a process of its own and
    takes a while), with one user (audited) and one attachment file; no process keeps it open."""
    data = tmp_path_factory.mktemp("site") / "data"
    env = _env(data)
    assert _eoms(env, "migrate", "--verbosity", "0").returncode == 0
    assert _eoms(env, "shell", "-c", CREATE_USER.format("keeper")).returncode == 0
    attachment = data / "media" / "attachments" / "2026" / "drawing.pdf"
    attachment.parent.mkdir(parents=True)
    attachment.write_bytes(b"%PDF-1.4 drawing")
    return data


@pytest.fixture
def site(tmp_path, migrated):
    """A copy of the migrated data directory for one test, which may change it at will."""
    shutil.copytree(migrated, tmp_path / "data")
    return _env(tmp_path / "data"), tmp_path


def _rewrite(source: Path, target: Path, change) -> None:
    """Copy an archive member by member; `change(name, data)` returns new bytes, or None to drop the member."""
    with tarfile.open(source, "r:gz") as old, tarfile.open(target, "w:gz") as new:
        for entry in old.getmembers():
            data = change(entry.name, old.extractfile(entry).read())
            if data is None:
                continue
            entry.size = len(data)
            new.addfile(entry, io.BytesIO(data))


def test_backup_then_restore_into_an_empty_data_dir_brings_back_users_audit_and_media(site):
    env, tmp = site
    archive = tmp / "eoms.tar.gz"

    result = _eoms(env, "backup", "--output", str(archive))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"backup written: {archive} (database ")
    assert result.stdout.rstrip().endswith(", 1 media files)")
    with tarfile.open(archive, "r:gz") as tar:
        assert sorted(tar.getnames()) == [
            "db/eoms.sqlite3",
            "manifest.json",
            "media/attachments/2026/drawing.pdf",
            "secret_key",
        ]
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["format"] == 1
    assert manifest["eoms_version"] == "0.1.0"
    assert manifest["members"]["media/attachments/2026/drawing.pdf"] == {
        "sha256": hashlib.sha256(b"%PDF-1.4 drawing").hexdigest(),
        "size": 16,
    }
    assert oct(archive.stat().st_mode & 0o777) == "0o600"

    shutil.rmtree(tmp / "data")
    result = _eoms(env, "restore", str(archive))
    assert result.returncode == 0, result.stderr
    assert "database, 1 media files, secret key" in result.stdout

    verify = _eoms(env, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.strip() == "audit chain intact: 1 entries"
    assert _eoms(env, "shell", "-c", LIST_USERS).stdout.strip().splitlines()[-1] == "['keeper']"
    assert (tmp / "data" / "media" / "attachments" / "2026" / "drawing.pdf").read_bytes() == b"%PDF-1.4 drawing"


def test_restore_refuses_a_database_with_data_unless_forced(site):
    env, tmp = site
    archive = tmp / "eoms.tar.gz"
    assert _eoms(env, "backup", "--output", str(archive)).returncode == 0
    assert _eoms(env, "shell", "-c", CREATE_USER.format("later")).returncode == 0

    refused = _eoms(env, "restore", str(archive))
    assert refused.returncode == 1
    assert "holds users or audit entries; nothing was restored. Pass --force" in refused.stderr
    assert _eoms(env, "shell", "-c", LIST_USERS).stdout.strip().splitlines()[-1] == "['keeper', 'later']"

    forced = _eoms(env, "restore", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    assert _eoms(env, "shell", "-c", LIST_USERS).stdout.strip().splitlines()[-1] == "['keeper']"
    assert _eoms(env, "audit", "verify").stdout.strip() == "audit chain intact: 1 entries"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (
            lambda name, data: data[:-1] + bytes([data[-1] ^ 1]) if name == "db/eoms.sqlite3" else data,
            "sha256 of db/eoms.sqlite3 does not match the manifest",
        ),
        (
            lambda name, data: b"%PDF-1.4 forged!" if name.startswith("media/") else data,
            "sha256 of media/attachments/2026/drawing.pdf does not match the manifest",
        ),
        (lambda name, data: None if name == "secret_key" else data, "member missing: secret_key"),
        (lambda name, data: None if name == "manifest.json" else data, "no manifest.json"),
    ],
)
def test_a_tampered_archive_is_refused_and_nothing_is_written(site, change, detail):
    """Each case changes one member, or drops one, and keeps the rest as written."""
    env, tmp = site
    archive, tampered = tmp / "eoms.tar.gz", tmp / "tampered.tar.gz"
    assert _eoms(env, "backup", "--output", str(archive)).returncode == 0
    _rewrite(archive, tampered, change)
    shutil.rmtree(tmp / "data")

    result = _eoms(env, "restore", str(tampered))
    assert result.returncode == 1
    assert f"{tampered} is damaged or was altered ({detail}); nothing was restored." in result.stderr
    assert not (tmp / "data" / "eoms.sqlite3").exists()
    assert not (tmp / "data" / "media").exists()


def test_a_member_outside_the_data_dir_is_refused(site):
    env, tmp = site
    archive, tampered = tmp / "eoms.tar.gz", tmp / "tampered.tar.gz"
    assert _eoms(env, "backup", "--output", str(archive)).returncode == 0
    with tarfile.open(archive, "r:gz") as old:
        members = [(entry, old.extractfile(entry).read()) for entry in old.getmembers()]
    with tarfile.open(tampered, "w:gz") as new:
        for entry, data in members:
            new.addfile(entry, io.BytesIO(data))
        evil = tarfile.TarInfo("media/../../escaped.txt")
        evil.size = 4
        new.addfile(evil, io.BytesIO(b"evil"))

    result = _eoms(env, "restore", str(tampered), "--force")
    assert result.returncode == 1
    assert "unexpected member 'media/../../escaped.txt'" in result.stderr
    assert not (tmp / "escaped.txt").exists()


def test_backup_of_a_server_database_points_to_pg_dump(site):
    env, tmp = site
    result = _eoms({**env, "DATABASE_URL": "postgres://eoms:pw@db.example.com:5432/eoms"}, "backup")
    assert result.returncode == 1
    assert "handle the embedded SQLite database only; DATABASE_URL is postgresql. Back it up with pg_dump" in (
        result.stderr
    )
