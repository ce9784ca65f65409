"""Rate limits: owners' sign-in, password reset and account changes; buyers' purchases and retrievals.

A hotspot's clients all come from its one public address: each client has its own limits, the
address only a ceiling that fifty busy clients stay under, and refused input never counts.
"""

import re
import time

import pytest

from portal.extensions import db, mail
from portal.models import Order
from portal.services import owners
from sandbox import demo, point_adapters_at
from tests.conftest import ROUTER_PASSWORD, Browser, page_text, router_values

HOTSPOT = "198.51.100.7"  # the public address a whole hotspot shares
ELSEWHERE = "203.0.113.50"


@pytest.fixture
def app_config(app_config):
    # The limits themselves are the defaults (portal/config.py), but for the sign-in's and connection tests'.
    return {**app_config, "RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "5 per minute",
            "ROUTER_TEST_RATE_LIMIT": "3 per minute", "ACCOUNT_CHANGE_RATE_LIMIT": "3 per minute"}


def test_login_attempts_are_rate_limited(app, owner):
    browser = Browser(app.test_client())
    codes = [browser.login("owner@example.com", "wrong").status_code for _ in range(7)]
    assert codes == [401] * 5 + [429, 429]
    # The page after the limit is the French error page, not a stack trace.
    assert "Trop de tentatives" in browser.login("owner@example.com", "owner-password").get_data(as_text=True)


def test_password_guesses_from_an_open_session_are_rate_limited(app, browser):
    """The email and password forms each check the current password: one count per owner for both."""
    def change_password(current: str):
        return browser.post("/owner/settings/password", {"password-current_password": current,
                                                         "password-password": "a-new-password",
                                                         "password-confirm": "a-new-password"})

    codes = [change_password(f"guess-{i}").status_code for i in range(2)]
    codes.append(browser.post("/owner/settings/email", {"email-email": "new@example.com",
                                                        "email-current_password": "guess-2"}).status_code)
    refused = change_password("owner-password")
    assert codes == [422] * 3 and refused.status_code == 429
    assert "réessayez dans une heure" in page_text(refused)
    assert owners.authenticate("owner@example.com", "owner-password") is not None  # the right one came too late
    other = owners.create_owner("other@example.com", "other-password")
    elsewhere = Browser(app.test_client())
    assert elsewhere.login(other.email, "other-password").status_code == 302
    assert elsewhere.post("/owner/settings/password", {"password-current_password": "nope",
                                                       "password-password": "a-new-password",
                                                       "password-confirm": "a-new-password"}).status_code == 422


def test_code_retrieval_is_rate_limited(app):
    client = app.test_client()
    codes = [client.post("/retrieve", data={"reference": f"GUESS{i:05d}", "phone": "2290197000000"}).status_code
             for i in range(7)]
    assert codes == [404] * 5 + [429, 429]


# -- buyers behind one public address ---------------------------------------------------------------


@pytest.fixture
def selling(app, router_server, provider_sandbox):
    point_adapters_at(app, provider_sandbox)
    router = demo.seed_shop(router_server.host, router_server.port, ROUTER_PASSWORD, dns_name="wifi.net",
                            email="maquis@example.com", password="maquis-password", router_name="Maquis")
    demo.register_accounts(provider_sandbox, router, "http://127.0.0.1:9")  # webhooks go nowhere
    return router


class Hotspot:
    """Clients of one hotspot, each with its MAC and address on the hotspot, behind one public address."""

    def __init__(self, app, router, address: str = HOTSPOT):
        self.client = app.test_client()
        self.router, self.address = router, address
        self.plan = router.plans[0]
        self.account = next(a for a in router.accounts if a.provider == "fedapay")
        self.intents = 0

    @staticmethod
    def mac(n: int) -> str:
        return f"02:00:00:00:{n // 256:02X}:{n % 256:02X}"

    def buy(self, n: int | None, **changes):
        """Client `n` (None: a browser that came without the login page's context) taps "Payer"."""
        self.intents += 1
        form = {"intent": f"intent-{self.intents}", "plan_id": self.plan.id, "account_id": self.account.id,
                "phone": "2290197000000", "dst": "http://example.com/", "server": "hotspot1"}
        if n is not None:
            form.update(mac=self.mac(n), ip=f"10.5.{50 + n // 250}.{2 + n % 250}")
        return self.client.post(f"/r/{self.router.slug}/buy", data={**form, **changes},
                                environ_base={"REMOTE_ADDR": self.address})

    def retrieve(self, n: int | None, reference: str, phone: str):
        form = {"reference": reference, "phone": phone}
        if n is not None:
            form.update(mac=self.mac(n))
        return self.client.post("/retrieve", data=form, environ_base={"REMOTE_ADDR": self.address})


def orders_made() -> int:
    return db.session.scalar(db.select(db.func.count(Order.id)))


def test_fifty_clients_behind_one_address_buy_without_blocking_each_other(app, selling):
    hotspot = Hotspot(app, selling)
    started = time.monotonic()
    # Each of fifty clients starts five payments within the minute: the most its own limit allows.
    codes = [hotspot.buy(n).status_code for _ in range(5) for n in range(50)]
    assert codes == [303] * 250, sorted(set(codes))
    assert orders_made() == 250
    # One client going further is stopped; the others, and newcomers, are not.
    over = hotspot.buy(7, phone="2290196123456")
    assert over.status_code == 429
    page = page_text(over)
    assert "Patientez une minute puis réessayez : ce que vous avez saisi est gardé." in page
    assert 'value="2290196123456"' in page and f'value="{hotspot.plan.id}" required checked' in page
    assert over.headers["Retry-After"]
    assert [hotspot.buy(n).status_code for n in range(50, 60)] == [303] * 10
    assert orders_made() == 260
    print(f"260 purchases in {time.monotonic() - started:.1f} s")


def test_the_address_ceiling_stops_a_client_that_invents_clients(app, selling):
    app.config["BUY_ADDRESS_RATE_LIMIT"] = "20 per minute"
    hotspot = Hotspot(app, selling)
    assert [hotspot.buy(n).status_code for n in range(22)] == [303] * 20 + [429, 429]
    assert Hotspot(app, selling, ELSEWHERE).buy(0).status_code == 303  # another hotspot is not concerned


def test_a_browser_without_the_login_pages_context_has_only_the_address_ceiling(app, selling):
    hotspot = Hotspot(app, selling)
    assert [hotspot.buy(None).status_code for _ in range(8)] == [303] * 8


def test_refused_purchases_do_not_count(app, selling):
    hotspot = Hotspot(app, selling)
    other = next(a for a in selling.accounts if a.provider == "feexpay")
    junk = [{"plan_id": "999999"}, {"plan_id": "x"}, {"account_id": "0"}, {"plan_id": ""},
            {"account_id": other.id, "phone": ""}]  # FeexPay needs the phone that pays
    for n in (3, None):
        codes = [hotspot.buy(n, **junk[i % len(junk)]).status_code for i in range(40)]
        assert codes == [422] * 40
    assert orders_made() == 0
    # Neither the client's own limit nor the address's was touched.
    assert [hotspot.buy(3).status_code for _ in range(5)] == [303] * 5
    assert hotspot.buy(3).status_code == 429


def test_fifty_clients_behind_one_address_retrieve_without_blocking_each_other(app, selling):
    hotspot = Hotspot(app, selling)
    # Five attempts each (the client's limit), each with its own reference and phone number.
    codes = [hotspot.retrieve(n, f"REF{n:03d}{k}", f"22901{n:03d}{k:05d}").status_code
             for k in range(5) for n in range(50)]
    assert codes == [404] * 250
    over = hotspot.retrieve(9, "REF0099", "2290100909999")
    assert over.status_code == 429
    page = page_text(over)
    assert "Trop d'essais en peu de temps pour retrouver un code. Patientez une minute puis réessayez : ce que " \
           "vous avez saisi est gardé." in page
    assert 'value="REF0099"' in page and 'value="2290100909999"' in page and 'name="mac" value="02:00:00:00:00:09"' in page
    assert not re.search(r'href="/(owner[^"]*)?"', page)  # the buyer's page, leading nowhere near the owners'
    assert over.headers["Cache-Control"] == "no-store"
    assert hotspot.retrieve(50, "REF0500", "2290105000000").status_code == 404


def test_a_reference_cannot_be_tried_with_many_phone_numbers(app, selling):
    hotspot = Hotspot(app, selling)
    # Five clients, or one posing as five: the reference itself is limited.
    codes = [hotspot.retrieve(n, "FDP-8841-XQ", f"229019700{n:04d}").status_code for n in range(7)]
    assert codes == [404] * 5 + [429, 429]
    assert Hotspot(app, selling, ELSEWHERE).retrieve(0, "FDP-8841-XQ", "2290197000000").status_code == 429
    assert hotspot.retrieve(8, "FDP-8841-XR", "2290197000008").status_code == 404


def test_refused_retrievals_do_not_count(app, selling):
    hotspot = Hotspot(app, selling)
    for n in (4, None):
        junk = [hotspot.retrieve(n, reference, phone).status_code
                for reference, phone in [("AB", "2290197000000"), ("FDP-8841-XQ", "1234"), ("", "")] * 15]
        assert junk == [404] * 45
    assert [hotspot.retrieve(4, "FDP-8841-XQ", "2290197000000").status_code for _ in range(5)] == [404] * 5


def test_password_reset_requests_are_limited_per_address_asked_for(app, owner):
    with mail.record_messages() as outbox:
        for email in ("owner@example.com", "nobody@example.com"):  # the same whether an owner has it or not
            browser = Browser(app.test_client())
            codes = [browser.post("/owner/password/forgot", {"email": email}, buffered=True).status_code
                     for _ in range(4)]
            assert codes == [200, 200, 200, 429], email
        assert len(outbox) == 3


def test_password_reset_requests_are_limited_per_client(app, owner):
    browser = Browser(app.test_client())
    codes = [browser.post("/owner/password/forgot", {"email": f"owner{n}@example.com"}).status_code for n in range(11)]
    assert codes == [200] * 10 + [429]
    assert "Trop de tentatives" in page_text(browser.post("/owner/password/forgot", {"email": "x@example.com"}))


def test_one_orders_page_cannot_be_hammered(app, selling):
    """The order page asks the provider (throttled apart); past what a polling page needs, it answers 429."""
    hotspot = Hotspot(app, selling)
    assert hotspot.buy(1).status_code == 303
    code = db.session.scalar(db.select(Order.code))
    answers = [hotspot.client.get(f"/o/{code}/status", environ_base={"REMOTE_ADDR": HOTSPOT}).status_code
               for _ in range(185)]
    assert answers.count(429) == 5 and set(answers) == {200, 429}
    other = Hotspot(app, selling, ELSEWHERE)
    assert other.buy(2, intent="elsewhere-1").status_code == 303  # another order's page is not affected
    other_code = db.session.scalar(db.select(Order.code).order_by(Order.id.desc()))
    assert other.client.get(f"/o/{other_code}").status_code == 200


def test_connection_tests_are_rate_limited_per_owner(app, owner, router_server):
    """Each test makes the server connect where the owner said: a few a minute, per owner."""
    first = Browser(app.test_client())
    first.login("owner@example.com", "owner-password")
    owners.create_owner("other@example.com", "other-password")
    other = Browser(app.test_client())
    other.login("other@example.com", "other-password")

    def add_router(browser) -> str:
        location = browser.post("/owner/routers/new", router_values(router_server)).headers["Location"]
        return location.rstrip("/")

    mine, theirs = add_router(first), add_router(other)
    fragments = [first.post(f"{mine}/test", headers={"HX-Request": "true"}) for _ in range(4)]
    assert [f.status_code for f in fragments] == [200, 200, 200, 429]
    assert "Trop de tests de connexion" in page_text(fragments[-1]) and "<html" not in page_text(fragments[-1])
    assert router_server.connections == 3  # the refused test never reached the router
    page = first.post(f"{mine}/test")  # without JavaScript: the router page, with the same message
    assert page.status_code == 429 and "Trop de tests de connexion" in page_text(page)
    assert "<html" in page_text(page)
    # The setup kit's confirmation connects too: the same allowance.
    kit = page_text(first.post(f"{mine}/kit", {}))
    token = re.search(r'name="token" value="([^"]+)"', kit).group(1)
    script = re.search(r'<textarea id="script"[^>]*>(.*?)</textarea>', kit, re.S).group(1)
    confirm = first.post(f"{mine}/kit/confirm", {"token": token})
    assert confirm.status_code == 429 and "Trop de tests de connexion" in page_text(confirm)
    assert script in page_text(confirm)  # the script stays on the page, to confirm later

    assert [other.post(f"{theirs}/test", headers={"HX-Request": "true"}).status_code for _ in range(3)] == [200] * 3


def test_hotspot_page_fetches_are_limited_per_address(app):
    app.config["HOTSPOT_PAGES_RATE_LIMIT"] = "3 per minute"
    anonymous = app.test_client()
    codes = [anonymous.get("/p/unknown-token/login.html").status_code for _ in range(4)]
    assert codes == [404, 404, 404, 429]
