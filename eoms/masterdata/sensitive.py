"""The encrypted fields of master data: how each is normalised for its blind index, how it is masked,
and who may see it in clear (eoms.core.crypto does the sealing; docs/decisions/0009).

Everything outside this module and the reveal service sees masked values only: API responses, pages,
audit diffs and outbox payloads. The clear value is read by `clear()` and shown only through
`services.reveal_value` (administrator or finance, one audit entry per reveal) and in the
administrator's edit forms."""

import re
from collections.abc import Callable
from dataclasses import dataclass

from eoms.core import crypto

from .models import Customer, CustomerContact, Supplier

__all__ = ["SENSITIVE", "clear", "masked", "sealed", "search_index", "mask_value", "normalise_phone"]


def normalise_phone(value: str) -> str:
    text = re.sub(r"[\s()-]", "", value or "")
    return text[3:] if text.startswith("+86") else text


def normalise_id_card(value: str) -> str:
    return re.sub(r"[\s-]", "", value or "").upper()


def normalise_bank_account(value: str) -> str:
    return re.sub(r"[\s-]", "", value or "")


@dataclass(frozen=True)
class Sensitive:
    normalise: Callable[[str], str]
    mask: Callable[[str], str]


SENSITIVE = {
    (Customer, "id_card_number"): Sensitive(normalise_id_card, crypto.mask_id_card),
    (CustomerContact, "phone"): Sensitive(normalise_phone, crypto.mask_phone),
    (Supplier, "contact_phone"): Sensitive(normalise_phone, crypto.mask_phone),
    (Supplier, "bank_account"): Sensitive(normalise_bank_account, crypto.mask_bank_account),
}


def _spec(model, field: str) -> Sensitive:
    return SENSITIVE[(model, field)]


def clear(obj, field: str) -> str:
    """The clear value; for services and the reveal path only."""
    return crypto.open_cell(obj, field)


def masked(obj, field: str) -> str:
    return _spec(type(obj), field).mask(clear(obj, field))


def mask_value(model, field: str, value: str) -> str:
    return _spec(model, field).mask(value)


def sealed(obj, field: str, value: str) -> dict:
    """Column values storing the (already validated) `value` as `field` of `obj`."""
    return crypto.seal_cell(obj, field, value, normalised=_spec(type(obj), field).normalise(value))


def search_index(model, field: str, text: str) -> str:
    """The blind index a search for `text` matches exactly in `field` ("" for empty text)."""
    return crypto.blind_index(_spec(model, field).normalise(text), table=model._meta.db_table, column=field)
