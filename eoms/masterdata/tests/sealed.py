"""Test rows with encrypted values, sealed the way masterdata.services seals them."""

from eoms.masterdata import sensitive
from eoms.masterdata.models import CustomerContact


def add_contact(customer, *, name: str, phone: str = "", **fields) -> CustomerContact:
    contact = CustomerContact(customer=customer, name=name, **fields)
    for column, value in sensitive.sealed(contact, "phone", phone).items():
        setattr(contact, column, value)
    contact.save(force_insert=True)
    return contact


def seal(obj, field: str, value: str):
    """Store `value` as the encrypted `field` of the saved row `obj`."""
    columns = sensitive.sealed(obj, field, value)
    type(obj).objects.filter(pk=obj.pk).update(**columns)
    for column, sealed_value in columns.items():
        setattr(obj, column, sealed_value)
    return obj
