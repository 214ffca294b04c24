"""Checking uploaded files for every context: size limit, type recognised from content, sha256."""

import hashlib
from dataclasses import dataclass

import filetype
from django.conf import settings
from django.core.files.base import ContentFile
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .errors import ValidationFailed

__all__ = ["Upload", "inspect_upload", "AttachmentRejected"]


class AttachmentRejected(ValidationFailed):
    code = "attachment.rejected"
    title = gettext_lazy("The file was rejected")


@dataclass(frozen=True)
class Upload:
    name: str
    content: bytes
    content_type: str
    sha256: str

    @property
    def size(self) -> int:
        return len(self.content)

    def as_file(self) -> ContentFile:
        return ContentFile(self.content, name=self.name)


def inspect_upload(name: str, data, *, field: str = "file") -> Upload:
    """Read an uploaded file (bytes or a file object) and accept it only if its content is of an
    allowed type and it is within the size limit. The name is kept for display only."""
    limit = settings.ATTACHMENT_MAX_MB * 1024 * 1024
    if hasattr(data, "size") and data.size is not None and data.size > limit:
        raise AttachmentRejected(
            errors=[
                {
                    "field": field,
                    "message": _("%(name)s is larger than %(mb)s MB.")
                    % {"name": name, "mb": settings.ATTACHMENT_MAX_MB},
                }
            ]
        )
    content = data if isinstance(data, bytes) else data.read(limit + 1)
    if len(content) > limit:
        raise AttachmentRejected(
            errors=[
                {
                    "field": field,
                    "message": _("%(name)s is larger than %(mb)s MB.")
                    % {"name": name, "mb": settings.ATTACHMENT_MAX_MB},
                }
            ]
        )
    if not content:
        raise AttachmentRejected(errors=[{"field": field, "message": _("%(name)s is empty.") % {"name": name}}])
    kind = filetype.guess(content)
    detected = kind.mime if kind else None
    if detected not in settings.ATTACHMENT_TYPES:
        allowed = ", ".join(sorted(settings.ATTACHMENT_TYPES))
        what = detected or _("an unrecognised type")
        raise AttachmentRejected(
            errors=[
                {
                    "field": field,
                    "message": _("%(name)s is %(type)s by its content; allowed: %(allowed)s.")
                    % {"name": name, "type": what, "allowed": allowed},
                }
            ]
        )
    safe_name = "".join(ch for ch in name.replace("\\", "/").rsplit("/", 1)[-1] if ch.isprintable())[:200]
    return Upload(
        name=safe_name or "file", content=content, content_type=detected, sha256=hashlib.sha256(content).hexdigest()
    )
