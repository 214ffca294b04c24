"""Migration 0003 seals the mobiles already stored in clear, and unsealing it gives them back."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from eoms.masterdata import sensitive
from eoms.masterdata.models import CustomerContact, Supplier
from eoms.testing.factories import valid_uscc

BEFORE = [("masterdata", "0002_contact_labels")]
AFTER = [("masterdata", "0003_encrypted_fields")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.asvs("14.2.4")
@pytest.mark.django_db(transaction=True)
def test_existing_mobiles_are_encrypted_and_back():
    # ASVS V14.2.4 (data at rest encrypted as documented): no clear mobile survives the upgrade
    old = _migrate(BEFORE)
    customer = old.get_model("masterdata", "Customer").objects.create(
        name="旧客户", uscc=valid_uscc(9001), region="east"
    )
    contact = old.get_model("masterdata", "CustomerContact").objects.create(
        customer=customer, name="甲", phone="13800000001"
    )
    supplier = old.get_model("masterdata", "Supplier").objects.create(
        name="旧供应商", uscc=valid_uscc(9002), region="east", contact_phone="13800000002"
    )
    empty = old.get_model("masterdata", "Supplier").objects.create(name="无电话", uscc=valid_uscc(9003), region="east")
    try:
        _migrate(AFTER)
        sealed_contact = CustomerContact.objects.get(pk=contact.pk)
        sealed_supplier = Supplier.objects.get(pk=supplier.pk)
        assert sealed_contact.phone_enc.startswith("v1:") and "13800000001" not in sealed_contact.phone_enc
        assert sensitive.clear(sealed_contact, "phone") == "13800000001"
        assert sensitive.clear(sealed_supplier, "contact_phone") == "13800000002"
        assert sealed_contact.phone_bidx == sensitive.search_index(CustomerContact, "phone", "138 0000 0001")
        assert Supplier.objects.get(pk=empty.pk).contact_phone_enc == ""
        back = _migrate(BEFORE)
        assert back.get_model("masterdata", "CustomerContact").objects.get(pk=contact.pk).phone == "13800000001"
        assert back.get_model("masterdata", "Supplier").objects.get(pk=supplier.pk).contact_phone == "13800000002"
    finally:
        # Every app at its latest: going back to masterdata 0002 also unapplied what depends on its
        # later migrations (the orders' summary, say), which the tests after this one need.
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
