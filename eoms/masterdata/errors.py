from django.utils.translation import gettext_lazy as _

from eoms.core.errors import NotFound, ValidationFailed

__all__ = ["ProjectNotFound", "CustomerNotFound", "SupplierNotFound", "ProjectTypeNotFound", "MasterDataInvalid"]


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


class MasterDataInvalid(ValidationFailed):
    code = "masterdata.validation_failed"
