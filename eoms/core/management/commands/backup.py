"""`eoms backup`: one .tar.gz holding a consistent snapshot of the embedded SQLite database and the media files.

The database is copied with SQLite's online backup API, which reads one consistent state while the
server keeps writing (a file copy of a WAL database can tear). The snapshot is taken before the media
files are read: attachments are written before the row that refers to them, so every attachment the
snapshot knows is in the archive (a file uploaded meanwhile is an unreferenced extra). The generated
secret key file is included when the key comes from it, because the audit chain's key derives from it
unless EOMS_AUDIT_KEY is set. manifest.json records the sha256 and size of every member, the EOMS
version and the creation time; `eoms restore` checks them before touching anything.

PostgreSQL and MySQL installations use their own tools (pg_dump, mysqldump): see README, Production.
"""

import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

FORMAT = 1
MANIFEST = "manifest.json"
DB_MEMBER = "db/eoms.sqlite3"
SECRET_KEY_MEMBER = "secret_key"
MEDIA_PREFIX = "media/"
CHUNK = 1024 * 1024


def eoms_version() -> str:
    try:
        return version("eoms")
    except PackageNotFoundError:
        return "unknown"


def sqlite_path() -> Path:
    """The embedded database's file, or CommandError naming the right tool for a server database."""
    db = settings.DATABASES["default"]
    engine = db["ENGINE"].rsplit(".", 1)[-1]
    if engine != "sqlite3":
        tool = {"postgresql": "pg_dump", "mysql": "mysqldump (or mariadb-dump)"}.get(engine, "the database's own tool")
        raise CommandError(
            f"eoms backup and eoms restore handle the embedded SQLite database only; DATABASE_URL is {engine}. "
            f"Back it up with {tool} (see README, Production) and copy the media directory {settings.MEDIA_ROOT}."
        )
    return Path(db["NAME"])


def secret_key_file() -> Path | None:
    """The generated secret key file when SECRET_KEY comes from it (no EOMS_SECRET_KEY)."""
    path = Path(settings.DATA_DIR) / "secret_key"
    if os.environ.get("EOMS_SECRET_KEY") or not path.is_file():
        return None
    return path


class _HashingReader(io.RawIOBase):
    """Feeds a file to tarfile while computing its sha256, so each file is read once."""

    def __init__(self, fileobj):
        self.fileobj = fileobj
        self.sha256 = hashlib.sha256()

    def readable(self):
        return True

    def read(self, size=-1):
        data = self.fileobj.read(size)
        self.sha256.update(data)
        return data


class Command(BaseCommand):
    help = "Write a consistent backup of the embedded SQLite database and the media files to one .tar.gz."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            help="archive to write (default: $EOMS_DATA_DIR/backups/eoms-backup-<UTC time>.tar.gz)",
        )

    def handle(self, *args, output: str | None, **options):
        db_path = sqlite_path()
        if not db_path.is_file():
            raise CommandError(f"no database at {db_path}: nothing to back up.")
        created_at = datetime.now(UTC)
        if output:
            target = Path(output).resolve()
        else:
            target = Path(settings.DATA_DIR) / "backups" / f"eoms-backup-{created_at:%Y%m%dT%H%M%SZ}.tar.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        members: dict[str, dict] = {}
        try:
            with tempfile.TemporaryDirectory() as tmp, tarfile.open(partial, "w:gz") as archive:
                partial.chmod(0o600)  # password hashes and personal data
                snapshot = Path(tmp) / "eoms.sqlite3"
                self._snapshot(db_path, snapshot)
                self._add(archive, members, DB_MEMBER, snapshot)
                key_file = secret_key_file()
                if key_file is not None:
                    self._add(archive, members, SECRET_KEY_MEMBER, key_file)
                media_root = Path(settings.MEDIA_ROOT)
                if media_root.is_dir():
                    for path in sorted(p for p in media_root.rglob("*") if p.is_file() and not p.is_symlink()):
                        self._add(archive, members, MEDIA_PREFIX + path.relative_to(media_root).as_posix(), path)
                manifest = {
                    "format": FORMAT,
                    "eoms_version": eoms_version(),
                    "created_at": created_at.isoformat(),
                    "database": {"engine": "sqlite3", "member": DB_MEMBER},
                    "members": members,
                }
                data = json.dumps(manifest, indent=2, sort_keys=True).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size = len(data)
                info.mtime = int(created_at.timestamp())
                info.mode = 0o600
                archive.addfile(info, io.BytesIO(data))
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        media_count = sum(1 for name in members if name.startswith(MEDIA_PREFIX))
        self.stdout.write(
            f"backup written: {target} (database {members[DB_MEMBER]['size']} bytes, {media_count} media files)"
        )

    @staticmethod
    def _snapshot(db_path: Path, snapshot: Path) -> None:
        source = sqlite3.connect(db_path, timeout=30)
        destination = sqlite3.connect(snapshot)
        try:
            source.backup(destination)
            # One self-contained file: no -wal beside it is needed to read the snapshot.
            destination.execute("PRAGMA journal_mode=DELETE")
        finally:
            destination.close()
            source.close()

    @staticmethod
    def _add(archive: tarfile.TarFile, members: dict, name: str, path: Path) -> None:
        info = archive.gettarinfo(str(path), arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with path.open("rb") as f:
            reader = _HashingReader(f)
            archive.addfile(info, reader)
        members[name] = {"sha256": reader.sha256.hexdigest(), "size": info.size}
