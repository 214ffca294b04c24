"""Uploaded files of orders: checked by the shared kernel (eoms.core.uploads), re-exported here."""

from eoms.core.uploads import Upload, inspect_upload

__all__ = ["Upload", "inspect_upload"]
