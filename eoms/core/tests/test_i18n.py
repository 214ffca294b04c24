"""EOMS speaks Simplified Chinese (the default) and English (the source language).

The Chinese catalogue is complete, consistent with its placeholders, compiled, and up to date with the
source; pages and API errors answer in the language the request asks for."""

import gettext
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

LOCALE_DIR = Path(settings.BASE_DIR) / "locale"
PO = LOCALE_DIR / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
# %(name)s as Python formatting and Django's blocktranslate write it, bare %s / %d, and {name}.
NAMED = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")
POSITIONAL = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")
BRACES = re.compile(r"\{(\w*)\}")


# ------------------------------------------------------------------------------------------ the .po


def _unquote(text: str) -> str:
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: escapes[m.group(1)], text[1:-1])


def parse_po(text: str) -> list[dict]:
    """The entries of a .po file: {"flags", "msgctxt", "msgid", "msgid_plural", "msgstr": {index: text}}
    (index None for a singular entry). Obsolete (#~) entries are left out."""
    entries: list[dict] = []
    entry: dict | None = None
    target = None  # (the dict the text being read goes to, its key)
    for line in text.splitlines() + [""]:
        if not line.strip() or line.startswith("#~"):
            if entry is not None and "msgid" in entry:
                entries.append(entry)
                entry, target = None, None
            continue
        if entry is None:
            entry = {"flags": set(), "msgctxt": None, "msgid_plural": None, "msgstr": {}}
        if line.startswith("#,"):
            entry["flags"] |= {f.strip() for f in line[2:].split(",") if f.strip()}
            continue
        if line.startswith("#"):
            continue
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(".*")$', line)
        if match:
            word, index = match.group(1), match.group(2)
            plural_index = int(index) if index is not None else None
            target = (entry["msgstr"], plural_index) if word == "msgstr" else (entry, word)
            target[0][target[1]] = _unquote(match.group(3))
        elif line.startswith('"') and target is not None:
            target[0][target[1]] += _unquote(line)
        else:
            raise AssertionError(f"cannot read this line of the catalogue: {line!r}")
    return entries


@pytest.fixture(scope="module")
def catalogue() -> list[dict]:
    return parse_po(PO.read_text(encoding="utf-8"))


def _messages(catalogue) -> list[dict]:
    return [e for e in catalogue if e["msgid"] != ""]


def _placeholders(text: str) -> tuple:
    named = set(NAMED.findall(text))
    bare = Counter(POSITIONAL.findall(NAMED.sub("", text.replace("%%", ""))))
    return named, bare, set(BRACES.findall(text))


def test_catalogue_header_is_for_simplified_chinese(catalogue):
    header = catalogue[0]
    assert header["msgid"] == ""
    assert "fuzzy" not in header["flags"]
    assert "Language: zh_Hans\n" in header["msgstr"][None]
    assert "Content-Type: text/plain; charset=UTF-8\n" in header["msgstr"][None]
    assert "Plural-Forms: nplurals=1; plural=0;\n" in header["msgstr"][None]


def test_every_message_is_translated_and_none_is_fuzzy(catalogue):
    messages = _messages(catalogue)
    assert len(messages) > 500
    assert [e["msgid"] for e in messages if "fuzzy" in e["flags"]] == []
    untranslated = [e["msgid"] for e in messages if not all(s.strip() for s in e["msgstr"].values())]
    assert untranslated == []
    plural = [e for e in messages if e["msgid_plural"] is not None]
    assert plural and all(set(e["msgstr"]) == {0} for e in plural)  # Chinese has one plural form
    assert all(set(e["msgstr"]) == {None} for e in messages if e["msgid_plural"] is None)


def test_translations_keep_the_placeholders(catalogue):
    wrong = []
    for e in _messages(catalogue):
        sources = [e["msgid"]] + ([e["msgid_plural"]] if e["msgid_plural"] is not None else [])
        expected = _placeholders(e["msgid"])
        if "no-python-format" in e["flags"]:  # "9% construction services" is never %-formatted
            expected = (expected[0], Counter(), expected[2])
        for source in sources[1:]:
            assert _placeholders(source)[0] == expected[0], source
        for text in e["msgstr"].values():
            got = _placeholders(text)
            if got != expected:
                wrong.append((e["msgid"], text))
    assert wrong == []


# Names that read the same in a Chinese interface.
KEPT_IN_ENGLISH = {"API"}


def test_translations_are_chinese(catalogue):
    """A translation without a Chinese character is an English text left untranslated."""
    han = re.compile(r"[\u4e00-\u9fff]")
    latin = {e["msgid"] for e in _messages(catalogue) if not any(han.search(s) for s in e["msgstr"].values())}
    assert latin <= KEPT_IN_ENGLISH


def test_compiled_catalogue_matches_the_po(catalogue):
    with MO.open("rb") as fp:
        compiled = gettext.GNUTranslations(fp)
    stale = []
    for e in _messages(catalogue):
        if e["msgctxt"] is not None:
            if compiled.pgettext(e["msgctxt"], e["msgid"]) != e["msgstr"][None]:
                stale.append(e["msgid"])
        elif e["msgid_plural"] is None:
            if compiled.gettext(e["msgid"]) != e["msgstr"][None]:
                stale.append(e["msgid"])
        elif compiled.ngettext(e["msgid"], e["msgid_plural"], 1) != e["msgstr"][0]:
            stale.append(e["msgid"])
    assert stale == [], "run `django-admin compilemessages` and commit django.mo"


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("xgettext", "msguniq", "msgmerge", "msgattrib")),
    reason="GNU gettext tools (xgettext, msguniq, msgmerge, msgattrib) are not installed",
)
def test_catalogue_is_up_to_date_with_the_source(catalogue, tmp_path, monkeypatch):
    """makemessages over a copy of the source finds exactly the messages the catalogue has: a new
    string without a translation, or a translation of a string that is gone, fails here."""
    source = tmp_path / "eoms"
    shutil.copytree(
        settings.BASE_DIR, source, ignore=shutil.ignore_patterns("locale", "static", "__pycache__", "*.pyc")
    )
    monkeypatch.chdir(source)
    with override_settings(LOCALE_PATHS=[source / "locale"]):
        call_command("makemessages", locale=["zh_Hans"], ignore_patterns=["static/*"], verbosity=0)
    fresh = parse_po((source / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8"))

    def keys(entries):
        return {(e["msgctxt"], e["msgid"], e["msgid_plural"]) for e in _messages(entries)}

    assert sorted(keys(fresh) - keys(catalogue), key=str) == [], "new strings: run makemessages and translate them"
    assert sorted(keys(catalogue) - keys(fresh), key=str) == [], "strings no longer in the source: run makemessages"


# ------------------------------------------------------------------------------------------ pages


@pytest.fixture
def signed_in(world):
    def make(**headers) -> Client:
        client = Client(**headers)
        client.force_login(world.pm)
        return client

    return make


def test_pages_speak_chinese_by_default(world, signed_in, settings):
    settings.LANGUAGE_CODE = "zh-hans"  # the product's default (conftest makes tests English)
    order = world.order("QUOTING")
    client = signed_in()
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 200
    assert dashboard["Content-Language"] == "zh-hans"
    page = dashboard.content.decode()
    assert '<html lang="zh-hans">' in page
    assert "工作台" in page and "各状态订单" in page and "报价中" in page
    assert "Dashboard" not in page and "Orders by state" not in page

    detail = client.get(reverse("orders:detail", args=[order.id])).content.decode()
    assert order.number in detail
    assert '<span class="badge state-badge state-QUOTING" data-state="QUOTING">报价中</span>' in detail
    assert "提交审批" in detail and "合同金额（含税）" in detail and "阶段负责人" in detail
    assert "Submit for approval" not in detail


@pytest.mark.parametrize("how", ["header", "cookie"])
def test_pages_answer_in_the_language_asked_for(world, signed_in, settings, how):
    settings.LANGUAGE_CODE = "zh-hans"
    order = world.order("SIGNED")

    def client_for(language: str) -> Client:
        if how == "header":
            return signed_in(HTTP_ACCEPT_LANGUAGE=language)
        client = signed_in(HTTP_ACCEPT_LANGUAGE="de")  # a language we do not speak: the cookie decides
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        return client

    english, chinese = client_for("en"), client_for("zh-hans")
    en_page = english.get(reverse("orders:detail", args=[order.id]))
    zh_page = chinese.get(reverse("orders:detail", args=[order.id]))
    assert (en_page["Content-Language"], zh_page["Content-Language"]) == ("en", "zh-hans")
    en_text, zh_text = en_page.content.decode(), zh_page.content.decode()
    assert 'data-state="SIGNED">Signed</span>' in en_text
    assert 'data-state="SIGNED">已签订</span>' in zh_text
    assert "Start execution" in en_text and "开始执行" in zh_text
    assert "开始执行" not in en_text and "Start execution" not in zh_text
    en_dash = english.get(reverse("dashboard")).content.decode()
    zh_dash = chinese.get(reverse("dashboard")).content.decode()
    assert "Orders in my scope" in en_dash and "我可见的订单" in zh_dash


# ------------------------------------------------------------------------------------------ API


def test_api_errors_answer_in_the_language_asked_for(world, settings):
    from eoms.accounts.services import issue_api_token

    settings.LANGUAGE_CODE = "zh-hans"
    order = world.order("QUOTING")
    token = issue_api_token(actor=world.pm, name="i18n")[1]

    def approve(**headers):  # "revise" is possible only from REJECTED
        response = Client().post(
            f"/api/v1/orders/{order.id}/revise",
            "{}",
            "application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            **headers,
        )
        assert response.status_code == 409
        assert response["Content-Type"] == "application/problem+json"
        return json.loads(response.content)

    english = approve(HTTP_ACCEPT_LANGUAGE="en")
    chinese = approve(HTTP_ACCEPT_LANGUAGE="zh-hans")
    default = approve()
    assert english["code"] == chinese["code"] == default["code"] == "order.invalid_transition"
    assert english["current_state"] == chinese["current_state"] == "QUOTING"
    assert english["title"] == "This action is not possible in the order's current state"
    assert english["detail"] == (
        f"Order {order.number} is QUOTING; 'revise' is possible only from REJECTED. Possible now: submit, cancel."
    )
    assert chinese["title"] == "订单当前状态下无法执行此操作"
    assert chinese["detail"] == (
        f"订单 {order.number} 状态为 QUOTING；操作 'revise' 只能在 REJECTED 状态下执行。当前可执行：submit, cancel。"
    )
    assert default == chinese


def test_api_field_errors_answer_in_the_language_asked_for(world):
    from eoms.accounts.services import issue_api_token

    token = issue_api_token(actor=world.pm, name="i18n")[1]
    body = {"project_id": str(world.project.id), "title": "管网", "contract_amount": "1.00", "tax_rate": "0.05"}

    def create(language):
        response = Client().post(
            "/api/v1/orders",
            json.dumps(body),
            "application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_ACCEPT_LANGUAGE=language,
        )
        assert response.status_code == 422
        return json.loads(response.content)

    english, chinese = create("en"), create("zh-hans")
    assert english["code"] == chinese["code"] == "order.validation_failed"
    assert english["errors"] == [
        {"field": "tax_rate", "message": "Tax rate must be one of 0.09, 0.06, 0.13, 0.03, 0.00."}
    ]
    assert chinese["errors"] == [{"field": "tax_rate", "message": "税率须为以下之一：0.09, 0.06, 0.13, 0.03, 0.00。"}]
    assert chinese["title"] == "校验未通过"
