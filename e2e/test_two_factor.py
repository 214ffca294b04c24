"""Two-factor authentication in a real browser, on a phone: a finance user (a role that requires it) is
sent to set up an authenticator app after the password, scans nothing but types the key shown into the
test's own TOTP computation, confirms, sees the recovery codes, and signs in again with a fresh code;
then a recovery code signs in once. The CSP holds: no console errors about blocked inline content."""

import re

import pytest
from playwright.sync_api import expect

from eoms.accounts import totp
from eoms.accounts.roles import Role
from eoms.testing.factories import UserFactory

from .test_approval_inbox import PASSWORD, PHONE, no_horizontal_scroll

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.asvs("6.3.2")]


@pytest.fixture
def phone(browser, live_server):
    context = browser.new_context(
        locale="en-US", base_url=live_server.url, viewport=PHONE, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def _password(page, username):
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_set_up_on_a_phone_then_sign_in_with_a_code_and_with_a_recovery_code(phone, settings, tmp_path):
    settings.TWO_FACTOR_REQUIRED_ROLES = [Role.FINANCE]
    user = UserFactory(username="fin_2fa", roles=[Role.FINANCE])
    blocked = []
    phone.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)

    _password(phone, user.username)
    expect(phone).to_have_url(re.compile(r"/accounts/two-factor/setup/$"))
    expect(phone.locator("#two-factor-required")).to_be_visible()
    phone.goto("/orders/")  # nothing else is reachable first
    expect(phone).to_have_url(re.compile(r"/accounts/two-factor/setup/$"))
    phone.click("#two-factor-start")

    qr = phone.locator("#two-factor-qr svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box["width"] >= 150 and box["width"] == pytest.approx(box["height"], abs=1)
    no_horizontal_scroll(phone)
    phone.screenshot(path=str(tmp_path / "two-factor-scan.png"), full_page=True)
    secret = totp.from_b32(phone.locator("#two-factor-secret").inner_text().replace(" ", ""))
    phone.fill("#id_code", totp.code_at(secret, totp.time_step()))
    phone.click("#two-factor-confirm")

    expect(phone.locator("#two-factor-enabled")).to_be_visible()
    codes = phone.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"([a-z2-7]{4}-){5}[a-z2-7]{4}", c) for c in codes)
    no_horizontal_scroll(phone)
    phone.click("#two-factor-continue")
    expect(phone).to_have_url(re.compile(r"/$"))
    phone.goto("/accounts/profile/")
    expect(phone.locator("#two-factor-state")).to_have_text("On")
    expect(phone.locator("#recovery-codes-left")).to_have_text("10 unused recovery codes.")
    no_horizontal_scroll(phone)

    phone.context.clear_cookies()
    _password(phone, user.username)
    expect(phone).to_have_url(re.compile(r"/accounts/two-factor/code/$"))
    phone.goto("/accounts/profile/")
    expect(phone).to_have_url(re.compile(r"/accounts/two-factor/code/$"))
    no_horizontal_scroll(phone)
    # The step after the one used to confirm: a fresh code, as the phone shows 30 seconds later.
    phone.fill("#id_code", totp.code_at(secret, totp.time_step() + 1))
    phone.click("#two-factor-submit")
    expect(phone).to_have_url(re.compile(r"/$"))
    expect(phone.locator("#user-menu")).to_be_visible()

    phone.context.clear_cookies()
    _password(phone, user.username)
    phone.fill("#id_code", codes[0])
    phone.click("#two-factor-submit")
    expect(phone).to_have_url(re.compile(r"/$"))
    expect(phone.get_by_text("You signed in with a recovery code; 9 are left.")).to_be_visible()

    phone.context.clear_cookies()
    _password(phone, user.username)
    phone.fill("#id_code", codes[0])  # used: refused
    phone.click("#two-factor-submit")
    expect(phone.locator("#two-factor-error")).to_contain_text("That code is not right, or was used already.")
    expect(phone).to_have_url(re.compile(r"/accounts/two-factor/code/$"))
    assert blocked == []
