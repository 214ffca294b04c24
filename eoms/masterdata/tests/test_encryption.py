"""Encrypted master data: ID card numbers, bank accounts and mobiles are stored sealed, shown masked
everywhere (API, pages, audit, outbox), revealed only to administrators and finance with an audit
entry, found by exact blind-index search, and re-encrypted by `eoms keys rotate`. ASVS ids are those
of OWASP ASVS 5.0."""

import base64
import io
import json

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from eoms.core import crypto
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.masterdata import sensitive, services
from eoms.masterdata.models import Customer, CustomerContact, Supplier
from eoms.testing.factories import valid_uscc
from eoms.testing.matrix import DENIED_ACTION, REQUEST_EVENTS

pytestmark = pytest.mark.django_db

BASE = "/api/v1/masterdata"
ID_CARD = "11010519491231002X"
BANK = "6222021234567891234"
PHONE = "13816620101"
PHONE_2 = "13902560109"
SUPPLIER_PHONE = "13862010201"
CANARIES = (ID_CARD, BANK, PHONE, PHONE_2, SUPPLIER_PHONE)
K1 = base64.b64encode(b"\x11" * 32).decode()
K2 = base64.b64encode(b"\x22" * 32).decode()
INDEX = base64.b64encode(b"\x33" * 32).decode()


def _api(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _post(client, path, body):
    return client.post(path, json.dumps(body), content_type="application/json")


def _customer(world, n=1) -> Customer:
    return services.create_customer(
        actor=world.admin,
        name=f"张三个人客户{n}",
        uscc=valid_uscc(7000 + n),
        region="east",
        id_card_number="110105 19491231 002x",
        contacts=[{"name": "顾志远", "phone": "138 1662 0101"}, {"name": "黄志伟", "phone": PHONE_2}],
    )


def _supplier(world, n=1) -> Supplier:
    return services.create_supplier(
        actor=world.admin,
        name=f"宏图劳务{n}",
        uscc=valid_uscc(8000 + n),
        kind="subcontractor",
        region="east",
        contact_phone=SUPPLIER_PHONE,
        bank_account="6222 0212 3456 7891 234",
    )


def _dump() -> str:
    """Every cell of the master data, audit and outbox tables as text."""
    tables = ["masterdata_customer", "masterdata_customercontact", "masterdata_supplier", "core_auditentry"]
    tables.append(OutboxMessage._meta.db_table)
    out = []
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - our table names
            out.extend(str(cell) for row in cursor.fetchall() for cell in row)
    return "\n".join(out)


@pytest.mark.asvs("14.2.4", "11.3.2")
def test_values_are_sealed_at_rest_and_open_with_their_row(world):
    # ASVS V14.2.4 and V11.3.2 (sensitive fields encrypted at rest with AES-GCM): canaries nowhere in a dump
    customer, supplier = _customer(world), _supplier(world)
    dump = _dump()
    for canary in CANARIES:
        assert canary not in dump
    assert "1662" in PHONE and "138 1662" not in dump
    customer.refresh_from_db()
    assert customer.id_card_number_enc.startswith("v1:")
    assert sensitive.clear(customer, "id_card_number") == ID_CARD
    assert [sensitive.clear(c, "phone") for c in customer.contacts.order_by("name")] == [PHONE, PHONE_2]
    assert sensitive.clear(supplier, "bank_account") == BANK
    assert sensitive.clear(supplier, "contact_phone") == SUPPLIER_PHONE


@pytest.mark.asvs("16.2.5")
def test_audit_and_outbox_hold_masked_values_only(world):
    # ASVS V16.2.5 (sensitive data is masked in what is logged)
    customer = _customer(world)
    services.update_customer(
        actor=world.admin,
        customer_id=customer.id,
        changes={"id_card_number": "110105194912310038", "contacts": [{"name": "顾志远", "phone": PHONE_2}]},
    )
    supplier = _supplier(world)
    services.update_supplier(actor=world.admin, supplier_id=supplier.id, changes={"bank_account": "622202123456"})
    created = AuditEntry.objects.get(action="masterdata.customer_created", object_id=str(customer.id))
    assert created.changes["id_card_number"] == "1101**********002X"
    assert [c["phone"] for c in created.changes["contacts"]] == ["138****0101", "139****0109"]
    updated = AuditEntry.objects.get(action="masterdata.customer_updated", object_id=str(customer.id))
    assert updated.changes["id_card_number"] == ["1101**********002X", "1101**********0038"]
    assert updated.changes["contacts"][1] == [{"name": "顾志远", "title": "", "phone": "139****0109", "email": ""}]
    changed = AuditEntry.objects.get(action="masterdata.supplier_updated", object_id=str(supplier.id))
    assert changed.changes == {"bank_account": ["6222 **** **** 1234", "6222 **** **** 3456"]}
    supplied = AuditEntry.objects.get(action="masterdata.supplier_created", object_id=str(supplier.id))
    assert (supplied.changes["contact_phone"], supplied.changes["bank_account"]) == (
        "138****0201",
        "6222 **** **** 1234",
    )
    payloads = json.dumps(list(OutboxMessage.objects.values_list("payload", flat=True)), ensure_ascii=False)
    for canary in (*CANARIES, "110105194912310038", "622202123456"):
        assert canary not in payloads


@pytest.mark.asvs("11.3.3")
def test_tampered_or_moved_values_fail_loudly(world):
    # ASVS V11.3.3 (a flipped byte or a ciphertext copied to another row is detected, never garbage)
    customer = _customer(world)
    first, second = customer.contacts.order_by("name")
    CustomerContact.objects.filter(pk=first.pk).update(phone_enc=second.phone_enc)
    first.refresh_from_db()
    with pytest.raises(crypto.TamperedValue, match="belongs to another row"):
        sensitive.clear(first, "phone")
    envelope = customer.id_card_number_enc
    flipped = envelope[:-6] + ("A" if envelope[-6] != "A" else "B") + envelope[-5:]
    Customer.objects.filter(pk=customer.pk).update(id_card_number_enc=flipped)
    customer.refresh_from_db()
    with pytest.raises(crypto.TamperedValue):
        sensitive.clear(customer, "id_card_number")


@pytest.mark.asvs("14.2.6")
def test_api_shows_masked_values_and_never_ciphertext_or_blind_index(world):
    # ASVS V14.2.6 (the API returns only the masked part by default)
    customer, supplier = _customer(world), _supplier(world)
    for user in (world.admin, world.finance, world.pm):
        client = _api(user)
        bodies = [
            client.get(f"{BASE}/customers/{customer.id}"),
            client.get(f"{BASE}/customers?q={customer.name}"),
            client.get(f"{BASE}/suppliers/{supplier.id}"),
            client.get(f"{BASE}/suppliers"),
        ]
        assert [b.status_code for b in bodies] == [200, 200, 200, 200]
        detail = bodies[0].json()
        assert detail["id_card_number"] == "1101**********002X"
        assert sorted(c["phone"] for c in detail["contacts"]) == ["138****0101", "139****0109"]
        one = bodies[2].json()
        assert (one["contact_phone"], one["bank_account"]) == ("138****0201", "6222 **** **** 1234")
        text = "".join(b.content.decode() for b in bodies)
        for canary in CANARIES:
            assert canary not in text
        for forbidden in ("v1:", "_enc", "_bidx", customer.id_card_number_bidx, supplier.bank_account_bidx):
            assert forbidden not in text


def test_invalid_id_card_and_bank_account_are_refused(world):
    client = _api(world.admin)
    response = _post(
        client,
        f"{BASE}/customers",
        {"name": "某", "uscc": valid_uscc(7100), "region": "east", "id_card_number": "110105194912310021"},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "id_card_number",
            "message": "Not a valid resident identity card number: 18 characters, the last a check digit or X.",
        }
    ]
    response = _post(
        client,
        f"{BASE}/suppliers",
        {"name": "某", "uscc": valid_uscc(7101), "kind": "supplier", "region": "east", "bank_account": "62220212345"},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "bank_account", "message": "A bank account number has 12 to 19 digits."}
    ]
    # A masked value sent back (a GET round trip) is refused rather than stored.
    response = _post(
        client,
        f"{BASE}/suppliers",
        {"name": "某", "uscc": valid_uscc(7102), "kind": "supplier", "region": "east", "contact_phone": "138****0201"},
    )
    assert response.status_code == 422


@pytest.mark.asvs("8.2.1", "16.3.2")
@pytest.mark.parametrize(
    ("identity", "status"),
    [
        ("admin", 200),
        ("finance", 200),
        ("project_manager", 403),
        ("approver", 403),
        ("field_engineer", 403),
        ("auditor", 403),
        ("outsider", 403),
        ("anonymous", 401),
    ],
)
def test_reveal_permission_matrix(world, identity, status):
    # ASVS V8.2.1 (function-level authorization) and V16.3.2 (access to sensitive data logged without the data)
    customer, supplier = _customer(world), _supplier(world)
    contact = customer.contacts.get(name="顾志远")
    client = _api(None if identity == "anonymous" else world.by_role[identity])
    before = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0  # the last entry written
    requests = [
        (f"{BASE}/customers/{customer.id}/reveal", {"field": "id_card_number"}, ID_CARD),
        (f"{BASE}/customers/{customer.id}/reveal", {"field": "phone", "contact_id": str(contact.id)}, PHONE),
        (f"{BASE}/suppliers/{supplier.id}/reveal", {"field": "bank_account"}, BANK),
        (f"{BASE}/suppliers/{supplier.id}/reveal", {"field": "contact_phone"}, SUPPLIER_PHONE),
    ]
    for path, body, clear in requests:
        response = _post(client, path, body)
        assert response.status_code == status, response.content
        if status == 200:
            assert response.json() == {"field": body["field"], "value": clear}
            assert response["Cache-Control"] == "no-store"
        else:
            assert clear not in response.content.decode()
    entries = list(AuditEntry.objects.filter(id__gt=before).exclude(action__in=REQUEST_EVENTS).order_by("id"))
    if status != 200:
        assert entries == []
        # Each refusal is audited (core.middleware), without the values asked for.
        refusals = AuditEntry.objects.filter(id__gt=before, action=DENIED_ACTION)
        assert refusals.count() == (len(requests) if status == 403 else 0)
        assert not any(clear in str(e.changes) for e in refusals for _p, _b, clear in requests)
        return
    actor = world.by_role[identity]
    assert [(e.action, e.object_type, e.object_id, e.actor_id, e.changes) for e in entries] == [
        (
            "masterdata.sensitive_revealed",
            "masterdata.customer",
            str(customer.id),
            actor.id,
            {"field": "id_card_number"},
        ),
        (
            "masterdata.sensitive_revealed",
            "masterdata.customer",
            str(customer.id),
            actor.id,
            {"field": "phone", "contact_id": str(contact.id)},
        ),
        ("masterdata.sensitive_revealed", "masterdata.supplier", str(supplier.id), actor.id, {"field": "bank_account"}),
        (
            "masterdata.sensitive_revealed",
            "masterdata.supplier",
            str(supplier.id),
            actor.id,
            {"field": "contact_phone"},
        ),
    ]
    for entry in entries:
        for canary in CANARIES:
            assert canary not in json.dumps(entry.changes)


def test_reveal_refuses_other_fields_and_foreign_contacts(world):
    customer, other = _customer(world, 1), _customer(world, 2)
    client = _api(world.admin)
    assert _post(client, f"{BASE}/customers/{customer.id}/reveal", {"field": "uscc"}).status_code == 422
    foreign = other.contacts.first()
    response = _post(
        client, f"{BASE}/customers/{customer.id}/reveal", {"field": "phone", "contact_id": str(foreign.id)}
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "contact_id", "message": "No such contact."}]
    assert not AuditEntry.objects.filter(action="masterdata.sensitive_revealed").exists()


def test_exact_search_by_blind_index(world):
    customer, supplier = _customer(world), _supplier(world)
    _customer(world, 2)  # the same numbers on another customer: both are found
    admin = _api(world.admin)

    def names(path, q):
        return sorted(r["name"] for r in admin.get(path, {"q": q}).json()["results"])

    assert names(f"{BASE}/customers", "110105 19491231 002x") == ["张三个人客户1", "张三个人客户2"]
    assert names(f"{BASE}/customers", "+86 138-1662-0101") == ["张三个人客户1", "张三个人客户2"]
    assert names(f"{BASE}/customers", "1381662010") == []  # exact only: no prefix search
    assert names(f"{BASE}/suppliers", "6222 0212 3456 7891 234") == ["宏图劳务1"]
    assert names(f"{BASE}/suppliers", SUPPLIER_PHONE) == ["宏图劳务1"]
    assert names(f"{BASE}/suppliers", PHONE) == []  # a customer contact's number is another column
    # Others would learn whose number it is: no exact search for them.
    pm = _api(world.pm)
    assert pm.get(f"{BASE}/customers", {"q": ID_CARD}).json()["results"] == []
    assert pm.get(f"{BASE}/suppliers", {"q": BANK}).json()["results"] == []
    assert customer.id_card_number_bidx and supplier.bank_account_bidx


def _env_keys(*pairs) -> str:
    return ",".join(f"{key_id}:{key}" for key_id, key in pairs)


@pytest.mark.asvs("11.2.2")
def test_rotate_reencrypts_everything_resumably_and_the_old_key_can_go(world):
    # ASVS V11.2.2 (crypto agility: keys can be replaced and the data re-encrypted)
    with override_settings(FIELD_KEYS=_env_keys(("k1", K1)), BLIND_INDEX_KEY=INDEX):
        customers = [_customer(world, n) for n in range(3)]
        suppliers = [_supplier(world, n) for n in range(2)]
        index_before = Customer.objects.get(pk=customers[0].pk).id_card_number_bidx
    with override_settings(FIELD_KEYS=_env_keys(("k2", K2), ("k1", K1)), BLIND_INDEX_KEY=INDEX):
        out = io.StringIO()
        call_command("keys", "rotate", "--batch-size", "2", "--limit", "5", stdout=out)
        # 3 ID cards, 6 contact mobiles, 2 bank accounts, 2 supplier mobiles = 13 values
        assert "5 values re-encrypted; 8 still under older keys: run again to finish" in out.getvalue()
        assert "masterdata_customer.id_card_number: 2 re-encrypted with k2, 1 to go" in out.getvalue()
        out = io.StringIO()
        call_command("keys", "rotate", "--batch-size", "2", stdout=out)
        assert "8 values re-encrypted; every value is under k2; keys k1 may now be removed" in out.getvalue()
        status = io.StringIO()
        call_command("keys", "status", stdout=status)
        assert status.getvalue().splitlines() == [
            "current key: k2; keyring: k2, k1",
            "accounts_totpdevice.secret: no values",  # authenticator apps' secrets (accounts), none here
            "masterdata_customer.id_card_number: k2: 3",
            "masterdata_customercontact.phone: k2: 6",
            "masterdata_supplier.bank_account: k2: 2",
            "masterdata_supplier.contact_phone: k2: 2",
        ]
        out = io.StringIO()
        call_command("keys", "rotate", stdout=out)
        assert "0 values re-encrypted; every value is under k2" in out.getvalue()
        [entry, second] = AuditEntry.objects.filter(action="core.field_keys_rotated").order_by("id")
        assert entry.changes["left"] == 8 and second.changes["left"] == 0
    with override_settings(FIELD_KEYS=_env_keys(("k2", K2)), BLIND_INDEX_KEY=INDEX):
        for customer in customers:
            customer.refresh_from_db()
            assert sensitive.clear(customer, "id_card_number") == ID_CARD
            assert sorted(sensitive.clear(c, "phone") for c in customer.contacts.all()) == [PHONE, PHONE_2]
        for supplier in suppliers:
            supplier.refresh_from_db()
            assert (sensitive.clear(supplier, "bank_account"), sensitive.clear(supplier, "contact_phone")) == (
                BANK,
                SUPPLIER_PHONE,
            )
        assert Customer.objects.get(pk=customers[0].pk).id_card_number_bidx == index_before
    # Without k1 before rotating, the values fail with the key named.
    with override_settings(FIELD_KEYS=_env_keys(("k1", K1)), BLIND_INDEX_KEY=INDEX):
        leftover = _supplier(world, 9)
    with (
        override_settings(FIELD_KEYS=_env_keys(("k2", K2)), BLIND_INDEX_KEY=INDEX),
        pytest.raises(crypto.UnknownKey, match="key id 'k1'"),
    ):
        sensitive.clear(leftover, "bank_account")


def test_customer_page_masks_and_reveals_for_admin_and_finance(world, client, settings):
    settings.LANGUAGE_CODE = "en"
    customer = _customer(world)
    contact = customer.contacts.get(name="顾志远")
    url = reverse("masterdata:customer_detail", args=[customer.id])
    reveal = reverse("masterdata:customer_reveal", args=[customer.id])
    client.force_login(world.pm)
    page = client.get(url).content.decode()
    assert "1101**********002X" in page and "138****0101" in page
    assert ID_CARD not in page and PHONE not in page and "reveal-button" not in page
    assert client.post(reveal, {"field": "id_card_number"}).status_code == 403
    client.force_login(world.finance)
    page = client.get(url)
    assert page["Cache-Control"] == "no-store"
    assert page.content.decode().count("reveal-button") == 3
    fragment = client.post(reveal, {"field": "phone", "contact_id": str(contact.id)}, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert fragment.content.decode().strip() == f'<span class="font-monospace sensitive-clear">{PHONE}</span>'
    full = client.post(reveal, {"field": "id_card_number"}).content.decode()
    assert ID_CARD in full and PHONE not in full
    assert AuditEntry.objects.filter(action="masterdata.sensitive_revealed", actor=world.finance).count() == 2


def test_supplier_pages_mask_and_reveal(world, client):
    supplier = _supplier(world)
    client.force_login(world.engineer)
    listing = client.get(reverse("masterdata:suppliers")).content.decode()
    detail = client.get(reverse("masterdata:supplier_detail", args=[supplier.id])).content.decode()
    assert "138****0201" in listing and "138****0201" in detail and "6222 **** **** 1234" in detail
    for text in (listing, detail):
        assert SUPPLIER_PHONE not in text and BANK not in text
    client.force_login(world.admin)
    response = client.post(
        reverse("masterdata:supplier_reveal", args=[supplier.id]), {"field": "bank_account"}, HTTP_HX_REQUEST="true"
    )
    assert BANK in response.content.decode()
    assert client.post(reverse("masterdata:supplier_reveal", args=[supplier.id]), {"field": "name"}).status_code == 400


@pytest.mark.asvs("14.2.6")
def test_an_edit_form_shows_clear_values_only_as_an_audited_reveal(world, client):
    customer, supplier = _customer(world), _supplier(world)
    contacts = sum(1 for c in customer.contacts.all() if c.phone_enc)
    client.force_login(world.admin)
    before = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    form = client.get(reverse("masterdata:customer_edit", args=[customer.id]))
    assert form.status_code == 200 and form["Cache-Control"] == "no-store"
    assert ID_CARD in form.content.decode() and PHONE in form.content.decode()
    shown = AuditEntry.objects.filter(id__gt=before, action="masterdata.sensitive_revealed").order_by("id")
    assert [e.changes["field"] for e in shown] == ["id_card_number"] + ["phone"] * contacts
    assert all(ID_CARD not in str(e.changes) and PHONE not in str(e.changes) for e in shown)

    before = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    page = client.get(reverse("masterdata:supplier_edit", args=[supplier.id])).content.decode()
    assert BANK in page and SUPPLIER_PHONE in page
    shown = AuditEntry.objects.filter(id__gt=before, action="masterdata.sensitive_revealed").order_by("id")
    assert sorted(e.changes["field"] for e in shown) == ["bank_account", "contact_phone"]


@pytest.mark.asvs("14.2.4", "16.2.5")
def test_canaries_appear_nowhere_but_in_an_authorised_reveal(world, caplog, settings):
    """Clear values sent through the API (creating, changing, refused) are found nowhere afterwards:
    not in a dump of the whole database, the logs (every logger at DEBUG), the audit, the outbox,
    the cache (Redis when REDIS_URL is set) or the error bodies; only in the reveal answer of a
    reader allowed to reveal."""
    caplog.set_level("DEBUG")
    admin = _api(world.admin)
    body = {
        "name": "金丝雀个人客户",
        "uscc": valid_uscc(7999),
        "region": "east",
        "id_card_number": ID_CARD,
        "contacts": [{"name": "顾志远", "phone": PHONE}],
    }
    created = _post(admin, f"{BASE}/customers", body)
    assert created.status_code == 201
    customer_id = created.json()["id"]
    answers = [created.content.decode()]
    # Refused: a second customer with the same values but an invalid credit code; a bank account of
    # a supplier that is not a bank account; a reveal by someone who may not.
    answers.append(_post(admin, f"{BASE}/customers", {**body, "uscc": "not-a-code"}).content.decode())
    bad_bank = {
        "name": "金丝雀劳务",
        "uscc": valid_uscc(8999),
        "kind": "subcontractor",
        "region": "east",
        "contact_phone": SUPPLIER_PHONE,
        "bank_account": BANK + "X",
    }
    answers.append(_post(admin, f"{BASE}/suppliers", bad_bank).content.decode())
    answers.append(
        _post(_api(world.pm), f"{BASE}/customers/{customer_id}/reveal", {"field": "id_card_number"}).content.decode()
    )
    answers.append(admin.get(f"{BASE}/customers/{customer_id}").content.decode())
    answers.append(admin.get(f"{BASE}/customers?q={ID_CARD}").content.decode())
    reveal = _post(_api(world.finance), f"{BASE}/customers/{customer_id}/reveal", {"field": "id_card_number"})
    assert reveal.json()["value"] == ID_CARD  # the one place a clear value may be

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    places = {
        "database": dump.getvalue(),
        "tables": _dump(),
        "logs": caplog.text,
        "answers": "\n".join(answers),
        "audit": json.dumps(list(AuditEntry.objects.values_list("changes", flat=True)), ensure_ascii=False),
        "outbox": json.dumps(list(OutboxMessage.objects.values_list("payload", flat=True)), ensure_ascii=False),
    }
    if settings.REDIS_URL:
        import redis

        server = redis.Redis.from_url(settings.REDIS_URL)
        cached = []
        for key in server.scan_iter(count=1000):
            kind = server.type(key)
            if kind == b"string":
                cached.append(str(server.get(key)))
            elif kind == b"hash":
                cached.append(str(server.hgetall(key)))
        places["redis"] = "\n".join(cached)
    for where, text in places.items():
        for canary in (ID_CARD, PHONE, SUPPLIER_PHONE, BANK, "13816620101"):
            assert canary not in text, f"{canary} found in the {where}"
    assert "1101**********002X" in places["answers"]  # the masked form is what is shown
