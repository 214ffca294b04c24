"""`eoms restore FILE`: put back what `eoms backup` wrote, after checking every member against the manifest.

Nothing is written until the whole archive has been read and every member's sha256 and size match
manifest.json, and no member is missing, unlisted, or anything but a plain file with a safe name.
A database holding users or audit entries is only replaced with --force. The database is written
with SQLite's backup API (correct with the WAL files of the replaced database); media files are
written beside their place and renamed over it; files not in the backup are left in place. Stop the
server and the relay while restoring. The manifest guards against damage and tampering with
individual members; it is not a signature, so keep the backups where only operators can write.
"""

import hashlib
import json
import os
import sqlite3
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from eoms.core.management.commands.backup import (
    CHUNK,
    DB_MEMBER,
    FORMAT,
    MANIFEST,
    MEDIA_PREFIX,
    SECRET_KEY_MEMBER,
    eoms_version,
    sqlite_path,
)
from eoms.core.models import AuditEntry


class Command(BaseCommand):
    help = "Restore the embedded SQLite database and media files from an `eoms backup` archive."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("archive", help="a .tar.gz written by eoms backup")
        parser.add_argument("--force", action="store_true", help="replace a database that holds users or audit entries")

    def handle(self, *args, archive: str, force: bool, **options):
        db_path = sqlite_path()
        archive_path = Path(archive)
        if not archive_path.is_file():
            raise CommandError(f"no such archive: {archive_path}")
        connections.close_all()
        try:
            tar = tarfile.open(archive_path, "r:gz")  # noqa: SIM115 -- closed by the `with tar` below
        except (tarfile.TarError, OSError) as error:
            raise CommandError(f"{archive_path} is not a readable .tar.gz: {error}")
        with tar:
            manifest = self._verify(tar, archive_path)
            if not force and self._holds_data(db_path):
                raise CommandError(
                    f"the database {db_path} holds users or audit entries; nothing was restored. "
                    "Pass --force to replace it with the backup."
                )
            self._restore_database(tar, manifest, db_path)
            restored_key = self._restore_secret_key(tar, manifest)
            media_count = self._restore_media(tar, manifest)
        self.stdout.write(
            f"restored {archive_path} (EOMS {manifest['eoms_version']}, created {manifest['created_at']}): "
            f"database, {media_count} media files" + (", secret key" if restored_key else "")
        )
        if manifest["eoms_version"] != eoms_version():
            self.stdout.write(f"the backup comes from EOMS {manifest['eoms_version']}: run `eoms migrate` next.")

    # -- checks -------------------------------------------------------------------------------------

    def _verify(self, tar: tarfile.TarFile, archive_path: Path) -> dict:
        def refuse(detail: str):
            return CommandError(f"{archive_path} is damaged or was altered ({detail}); nothing was restored.")

        try:
            entries = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as error:
            raise refuse(f"unreadable archive: {error}")
        names = [entry.name for entry in entries]
        if len(names) != len(set(names)):
            raise refuse("a member appears twice")
        for entry in entries:
            if not entry.isreg() or not _safe_name(entry.name):
                raise refuse(f"unexpected member {entry.name!r}")
        if MANIFEST not in names:
            raise refuse("no manifest.json")
        try:
            manifest = json.loads(tar.extractfile(MANIFEST).read())
            listed = manifest["members"]
            if manifest["format"] != FORMAT or not isinstance(listed, dict):
                raise ValueError("unknown manifest format")
            if not {"eoms_version", "created_at"} <= manifest.keys():
                raise ValueError("no eoms_version or created_at")
        except (ValueError, KeyError, TypeError) as error:
            raise refuse(f"unreadable manifest: {error}")
        present = set(names) - {MANIFEST}
        if present - set(listed):
            raise refuse(f"member not in the manifest: {sorted(present - set(listed))[0]}")
        if set(listed) - present:
            raise refuse(f"member missing: {sorted(set(listed) - present)[0]}")
        if DB_MEMBER not in listed:
            raise refuse("no database in the archive")
        for entry in entries:
            if entry.name == MANIFEST:
                continue
            digest = hashlib.sha256()
            source = tar.extractfile(entry)
            while chunk := source.read(CHUNK):
                digest.update(chunk)
            expected = listed[entry.name]
            if digest.hexdigest() != expected.get("sha256") or entry.size != expected.get("size"):
                raise refuse(f"sha256 of {entry.name} does not match the manifest")
        return manifest

    @staticmethod
    def _holds_data(db_path: Path) -> bool:
        if not db_path.is_file():
            return False
        tables = [get_user_model()._meta.db_table, AuditEntry._meta.db_table]
        with sqlite3.connect(db_path, timeout=30) as db:
            existing = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return any(
                # nosemgrep: eoms-raw-sql-formatting -- two models' table names, no input (a sqlite3 file check)
                db.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]  # noqa: S608 -- model table names
                for table in tables
                if table in existing
            )

    # -- writes -------------------------------------------------------------------------------------

    @staticmethod
    def _extract_checked(tar: tarfile.TarFile, name: str, expected: dict, target: Path) -> None:
        """Write member `name` to `target`, checking its sha256 again while writing."""
        digest = hashlib.sha256()
        source = tar.extractfile(name)
        with target.open("wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected["sha256"]:
            target.unlink()
            raise CommandError(f"{name} changed while restoring; restore again from an intact archive.")

    def _restore_database(self, tar: tarfile.TarFile, manifest: dict, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=db_path.parent) as tmp:
            snapshot = Path(tmp) / "restore.sqlite3"
            self._extract_checked(tar, DB_MEMBER, manifest["members"][DB_MEMBER], snapshot)
            source = sqlite3.connect(snapshot)
            destination = sqlite3.connect(db_path, timeout=30)
            try:
                source.backup(destination)
            finally:
                destination.close()
                source.close()

    def _restore_secret_key(self, tar: tarfile.TarFile, manifest: dict) -> bool:
        if SECRET_KEY_MEMBER not in manifest["members"] or os.environ.get("EOMS_SECRET_KEY"):
            return False
        target = Path(settings.DATA_DIR) / "secret_key"
        partial = target.with_name(".secret_key.restore")
        self._extract_checked(tar, SECRET_KEY_MEMBER, manifest["members"][SECRET_KEY_MEMBER], partial)
        partial.chmod(0o600)
        partial.replace(target)
        return True

    def _restore_media(self, tar: tarfile.TarFile, manifest: dict) -> int:
        media_root = Path(settings.MEDIA_ROOT).resolve()
        count = 0
        for name, expected in sorted(manifest["members"].items()):
            if not name.startswith(MEDIA_PREFIX):
                continue
            target = media_root.joinpath(*PurePosixPath(name[len(MEDIA_PREFIX) :]).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.restore")
            self._extract_checked(tar, name, expected, partial)
            partial.replace(target)
            count += 1
        return count


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or not path.parts:
        return False
    return name in (MANIFEST, DB_MEMBER, SECRET_KEY_MEMBER) or (
        name.startswith(MEDIA_PREFIX) and len(path.parts) > 1 and not name.endswith("/")
    )
