"""Strict browser headers, secrets encrypted at rest, key rotation."""

import json
import re

import pytest
from cryptography.fernet import Fernet

from portal.crypto import SecretUnreadable, cipher_from_config
from portal.extensions import db
from portal.models import PaymentAccount, Plan, Router, Ticket
from portal.services import provisioning
from tests.conftest import Browser, CREDENTIALS, ROUTER_PASSWORD, router_values

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
STYLE_ATTRIBUTE = re.compile(r"\sstyle\s*=", re.I)


@pytest.fixture
def selling_router(browser, router_server, owner) -> Router:
    browser.post("/owner/routers/new", router_values(router_server, user_mode="up", charset="mix1"))
    router = db.session.scalar(db.select(Router))
    browser.post(f"/owner/routers/{router.id}/test")
    db.session.add(Plan(router=router, label="1 jour", profile="1d", price=500))
    for provider, credentials in CREDENTIALS.items():
        account = PaymentAccount(owner=owner, provider=provider, label=provider, credentials=json.dumps(credentials))
        db.session.add(account)
        router.accounts.append(account)
    db.session.commit()
    return router


def owner_and_buyer_pages(browser, router: Router) -> list[str]:
    return ["/owner/routers/", f"/owner/routers/{router.id}", f"/owner/routers/{router.id}/edit",
            f"/owner/routers/{router.id}/plans/new", "/owner/accounts/", f"/r/{router.slug}", "/retrieve",
            "/owner/login", "/no-such-page"]


def test_every_page_sends_strict_headers_and_has_no_inline_script_or_style(browser, selling_router):
    for path in owner_and_buyer_pages(browser, selling_router):
        response = browser.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in response.headers  # plain http here
        page = response.get_data(as_text=True)
        assert not INLINE_SCRIPT.search(page) and not INLINE_HANDLER.search(page), path
        assert not STYLE_ATTRIBUTE.search(page), path


def test_hsts_behind_tls(app):
    response = app.test_client().get("/", base_url="https://kiosque.example")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_secrets_are_never_stored_in_clear(browser, selling_router, router_server):
    ticket = provisioning.sell_by_hand(selling_router, selling_router.plans[0])  # "up" mode: a real password
    assert ticket.password != ticket.username
    dump = "\n".join(str(row) for table in ("router", "payment_account", "ticket", "plan", "owner")
                     for row in db.session.execute(db.text(f"SELECT * FROM {table}")).all())
    secrets = [ROUTER_PASSWORD, ticket.password, "owner-password"]
    secrets += [v for c in CREDENTIALS.values() for k, v in c.items() if k not in ("site_id", "shop_id", "public_key")]
    for secret in secrets:
        assert secret not in dump, secret


def test_keys_rotate_reencrypts_every_secret(app, browser, selling_router, router_server):
    ticket_password = provisioning.sell_by_hand(selling_router, selling_router.plans[0]).password
    old_key, new_key = app.config["ENCRYPTION_KEY"], Fernet.generate_key().decode()
    app.extensions["kiosque.cipher"] = cipher_from_config(f"{new_key},{old_key}")
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0 and "secrets re-encrypted" in result.output
    count = int(result.output.split()[0])
    assert count >= 5  # the router password, three accounts' credentials, the ticket password
    db.session.expire_all()
    app.extensions["kiosque.cipher"] = cipher_from_config(new_key)  # the old key is gone
    assert db.session.scalar(db.select(Router)).api_password == ROUTER_PASSWORD
    assert db.session.scalar(db.select(Ticket)).password == ticket_password
    assert json.loads(db.session.scalar(db.select(PaymentAccount).where(PaymentAccount.provider == "fedapay"))
                      .credentials)["secret_key"] == CREDENTIALS["fedapay"]["secret_key"]
    db.session.expire_all()
    app.extensions["kiosque.cipher"] = cipher_from_config(old_key)
    with pytest.raises(SecretUnreadable):
        db.session.scalar(db.select(Router)).api_password
    db.session.expire_all()
    app.extensions["kiosque.cipher"] = cipher_from_config(new_key)


def test_a_login_without_csrf_token_is_refused_even_with_the_right_password(app, owner):
    response = Browser(app.test_client()).client.post(
        "/owner/login", data={"email": "owner@example.com", "password": "owner-password"})
    assert response.status_code == 400


@pytest.mark.parametrize("next_", [
    "/%09/evil.example", "/%0a/evil.example", "/%0d/evil.example", "/%5C/evil.example", "/%5Cevil.example",
    "/%0d%0aSet-Cookie:%20owned=1", "/%0d%0a%0d%0a<h1>hi</h1>", "/%20/evil.example", "/%E2%80%8B/evil.example",
    "//evil.example", "///evil.example", "https://evil.example/", "evil.example", "/%2F/evil.example",
])
def test_the_language_switch_goes_back_only_to_a_path_of_this_site(app, next_):
    response = app.test_client().get(f"/lang/en?next={next_}")
    assert response.status_code == 302
    assert response.location == "/"
    assert "Set-Cookie: owned" not in str(response.headers) and "owned=1" not in response.headers.get("Set-Cookie", "")


def test_the_language_switch_keeps_an_ordinary_path_and_query(app):
    response = app.test_client().get("/lang/en", query_string={"next": "/owner/orders/?status=paid&q=FP-1"})
    assert response.status_code == 302 and response.location == "/owner/orders/?status=paid&q=FP-1"
