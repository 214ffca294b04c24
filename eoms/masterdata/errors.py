from django.utils.translation import gettext_lazy as _

from eoms.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

__all__ = [
    "ProjectNotFound",
    "CustomerNotFound",
    "SupplierNotFound",
    "ProjectTypeNotFound",
    "MemberNotFound",
    "MasterDataInvalid",
    "MasterDataImportFailed",
    "MasterDataPermissionDenied",
    "StaleMasterData",
    "MasterDataInUse",
]


class ProjectNotFound(NotFound):
    code = "project.not_found"
    title = _("Project not found")


class CustomerNotFound(NotFound):
    code = "customer.not_found"
    title = _("Customer not found")


class SupplierNotFound(NotFound):
    code = "supplier.not_found"
    title = _("Supplier not found")


class ProjectTypeNotFound(NotFound):
    code = "project_type.not_found"
    title = _("Project type not found")


class MemberNotFound(NotFound):
    code = "project.member_not_found"
    title = _("Not a member of this project")


class MasterDataInvalid(ValidationFailed):
    code = "masterdata.validation_failed"


class MasterDataImportFailed(ValidationFailed):
    """A spreadsheet that was refused as a whole; `errors` lists {"row", "column", "message"} items,
    where `row` is the spreadsheet's own row number (the header is row 1) or None for the whole file."""

    code = "masterdata.import_failed"
    title = _("The spreadsheet was not imported")


class MasterDataPermissionDenied(PermissionDenied):
    code = "masterdata.permission_denied"


class StaleMasterData(Conflict):
    code = "masterdata.stale"
    title = _("The record was changed by someone else")


class MasterDataInUse(Conflict):
    code = "masterdata.in_use"
    title = _("The record is in use")
