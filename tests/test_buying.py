"""The buyer's whole path over real HTTP: Kiosque served on a port, the sandbox providers calling
its webhooks, the sandbox router taking the tickets."""

import html
import json
import re
import time

import pytest
import requests

from portal.extensions import db
from portal.models import Order, OrderStatus, PaymentAccount, Plan, Router, WebhookEvent
from portal.services import owners
from portal.services import routers as router_service
from tests.conftest import ROUTER_PASSWORD

PROVIDERS = ("fedapay", "cinetpay", "feexpay")
CLIENT_IP, CLIENT_MAC = "10.5.50.77", "AA:BB:CC:00:11:22"
PHONE = "2290197000000"
CREDENTIALS = {
    "fedapay": {"secret_key": "sk_sandbox_shop", "webhook_secret": "wh_sandbox_shop", "public_key": "pk_sandbox_shop"},
    "cinetpay": {"apikey": "cp-api-key", "site_id": "105900", "secret_key": "cp-secret"},
    "feexpay": {"shop_id": "shop123456789ab", "token": "fp_shop_token"},
}


@pytest.fixture
def app_config(app_config):
    return {**app_config, "ORDER_POLL_AFTER": 0, "MAIL_PORT": 1}


@pytest.fixture
def shop(app, live_server, provider_sandbox, router_server):
    """An owner selling two plans on the sandbox router through the three sandbox providers."""
    owner = owners.create_owner("maquis@example.com", "maquis-password")
    router = Router(owner=owner, name="Maquis", host=router_server.host, port=router_server.port,
                    api_username="admin", api_password=ROUTER_PASSWORD, dns_name="wifi.net")
    db.session.add(router)
    db.session.commit()
    assert router_service.test_connection(router).ok
    db.session.add_all([Plan(router=router, label="1 heure", profile="1h", price=200, time_limit="1h"),
                        Plan(router=router, label="1 jour", profile="1d", price=500, time_limit="1d")])
    for provider, credentials in CREDENTIALS.items():
        account = PaymentAccount(owner=owner, provider=provider, label=provider, environment="sandbox",
                                 credentials=json.dumps(credentials), public_id="",
                                 settings={"networks": ["mtn", "moov"]} if provider == "feexpay" else {})
        db.session.add(account)
        router.accounts.append(account)
    db.session.commit()
    for account in router.accounts:
        webhook = f"{live_server}/webhooks/{account.provider}/{account.webhook_token}"
        if account.provider == "fedapay":
            provider_sandbox.add_fedapay_account(**CREDENTIALS["fedapay"], webhook_url=webhook)
        elif account.provider == "cinetpay":
            provider_sandbox.add_cinetpay_account(**CREDENTIALS["cinetpay"])
        else:
            provider_sandbox.add_feexpay_account(**CREDENTIALS["feexpay"], webhook_url=webhook)
    router_server.add_host(CLIENT_IP, CLIENT_MAC)
    return router


class Buyer:
    """A phone on the hotspot: a browser session that came from the router's login page."""

    def __init__(self, base: str, router: Router):
        self.base, self.router, self.http = base, router, requests.Session()

    def buy(self, provider: str, plan_label: str = "1 heure", **extra) -> requests.Response:
        page = self.http.get(f"{self.base}/r/{self.router.slug}",
                             params={"mac": CLIENT_MAC, "ip": CLIENT_IP, "dst": "http://example.com/", "server": "hotspot1"})
        assert page.status_code == 200
        intent = re.search(r'name="intent" value="([^"]+)"', page.text).group(1)
        plan = next(p for p in self.router.plans if p.label == plan_label)
        account = next(a for a in self.router.accounts if a.provider == provider)
        form = {"intent": intent, "plan_id": plan.id, "account_id": account.id, "mac": CLIENT_MAC, "ip": CLIENT_IP,
                "dst": "http://example.com/", "server": "hotspot1", "phone": PHONE, "network": "mtn", **extra}
        return self.http.post(f"{self.base}/r/{self.router.slug}/buy", data=form, allow_redirects=False)

    def order_page(self, order: Order) -> str:
        return html.unescape(self.http.get(f"{self.base}/o/{order.code}").text)


def latest_order() -> Order:
    db.session.expire_all()
    return db.session.scalar(db.select(Order).order_by(Order.id.desc()))


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def users_for(router_server, order: Order) -> list[dict]:
    return [u for u in router_server.users() if u.get("comment", "").endswith("-" + order.code)]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_paid_through_the_webhook_the_client_is_online(shop, live_server, provider_sandbox, router_server, provider):
    buyer = Buyer(live_server, shop)
    response = buyer.buy(provider)
    order = latest_order()
    assert response.status_code == 303
    if provider == "feexpay":  # a push to the phone: the buyer waits on the order page
        assert response.headers["Location"].endswith(f"/o/{order.code}")
        assert "Confirmez sur votre téléphone" in buyer.order_page(order)
    else:
        assert response.headers["Location"] == order.checkout_url.replace("&amp;", "&")
        assert response.headers["Location"].startswith(provider_sandbox.base_url)
    assert (order.status, order.amount, order.currency) == (OrderStatus.PENDING, 200, "XOF")

    provider_sandbox.approve(provider, order.provider_ref)
    wait_for(lambda: latest_order().status == OrderStatus.PROVISIONED)
    order = latest_order()
    [user] = users_for(router_server, order)
    assert user["profile"] == "1h" and user["limit-uptime"] == "1h"
    [session] = router_server.active()
    assert session["user"] == user["name"] and session["address"] == CLIENT_IP
    page = buyer.order_page(order)
    assert "Vous êtes connecté" in page and user["name"] in page
    assert 'href="http://example.com/"' in page
    kinds = [e.kind for e in order.events]
    assert kinds[:2] == ["created", "checkout started"] and "paid" in kinds and "provisioned" in kinds
    assert order.payer_reference


@pytest.mark.parametrize("provider", PROVIDERS)
def test_webhook_lost_the_order_page_asks_the_provider(shop, live_server, provider_sandbox, router_server, provider):
    provider_sandbox.set_knobs(lose_notifications=True)
    buyer = Buyer(live_server, shop)
    buyer.buy(provider)
    order = latest_order()
    provider_sandbox.approve(provider, order.provider_ref)
    page = buyer.order_page(order)  # the buyer's return, or the page's polling
    assert "Vous êtes connecté" in page
    assert len(users_for(router_server, latest_order())) == 1
    assert db.session.scalar(db.select(db.func.count(WebhookEvent.id))) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("outcome", ["decline", "cancel"])
def test_declined_or_cancelled_makes_no_ticket(shop, live_server, provider_sandbox, router_server, provider, outcome):
    buyer = Buyer(live_server, shop)
    buyer.buy(provider)
    order = latest_order()
    getattr(provider_sandbox, outcome)(provider, order.provider_ref)
    wait_for(lambda: "Paiement non abouti" in buyer.order_page(latest_order()))
    assert latest_order().status == OrderStatus.FAILED
    assert router_server.users() == []
    assert "Réessayer" in buyer.order_page(latest_order())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_duplicate_notifications_make_one_ticket(shop, live_server, provider_sandbox, router_server, provider):
    provider_sandbox.set_knobs(duplicate_notifications=5)
    Buyer(live_server, shop).buy(provider)
    order = latest_order()
    provider_sandbox.approve(provider, order.provider_ref)
    wait_for(lambda: latest_order().status == OrderStatus.PROVISIONED)
    provider_sandbox.drain(timeout=5)
    assert len(users_for(router_server, latest_order())) == 1
    assert [e.kind for e in latest_order().events].count("provisioned") == 1
    assert db.session.scalar(db.select(db.func.count(WebhookEvent.id))) >= 5


@pytest.mark.parametrize("provider", ["fedapay", "cinetpay"])
def test_forged_signature_is_refused_and_changes_nothing(shop, live_server, provider_sandbox, router_server, provider):
    provider_sandbox.set_knobs(forge_signatures=True)
    Buyer(live_server, shop).buy(provider)
    order = latest_order()
    provider_sandbox.approve(provider, order.provider_ref)
    provider_sandbox.drain(timeout=5)
    events = db.session.scalars(db.select(WebhookEvent)).all()
    assert events and all(e.outcome == "invalid" and e.signature_valid is False for e in events)
    assert latest_order().status == OrderStatus.PENDING and router_server.users() == []


def test_forged_feexpay_success_for_an_unpaid_reference_is_ignored(shop, live_server, provider_sandbox, router_server):
    Buyer(live_server, shop).buy("feexpay")
    order = latest_order()
    account = next(a for a in shop.accounts if a.provider == "feexpay")
    forged = requests.post(f"{live_server}/webhooks/feexpay/{account.webhook_token}",
                           json={"reference": order.provider_ref, "status": "SUCCESSFUL", "amount": 200})
    assert forged.status_code == 200  # a hint only: FeexPay said it is still pending
    assert latest_order().status == OrderStatus.PENDING and router_server.users() == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_amount_mismatch_is_not_applied(shop, live_server, provider_sandbox, router_server, provider):
    buyer = Buyer(live_server, shop)
    buyer.buy(provider)
    order = latest_order()
    order.amount = 5000  # as if the plan's price had been tampered with between order and payment
    db.session.commit()
    provider_sandbox.approve(provider, order.provider_ref)
    provider_sandbox.drain(timeout=5)
    buyer.order_page(order)
    order = latest_order()
    assert order.status == OrderStatus.PENDING and router_server.users() == []
    assert [e.kind for e in order.events].count("amount mismatch") == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_down_at_checkout(shop, live_server, provider_sandbox, provider):
    provider_sandbox.set_knobs(outage=True)
    response = Buyer(live_server, shop).buy(provider)
    assert response.status_code == 422
    assert "Rien n'a été débité" in html.unescape(response.text)
    assert latest_order().status == OrderStatus.FAILED


@pytest.mark.parametrize("provider", PROVIDERS)
def test_router_down_at_payment_time_then_back(shop, live_server, provider_sandbox, router_server, provider):
    buyer = Buyer(live_server, shop)
    buyer.buy(provider)
    order = latest_order()
    router_server.mode = "refuse"
    provider_sandbox.approve(provider, order.provider_ref)
    wait_for(lambda: "router error" in [e.kind for e in latest_order().events])
    order = latest_order()
    assert order.status == OrderStatus.PAID
    assert "Paiement reçu" in buyer.order_page(order)
    router_server.mode = "normal"
    order.next_attempt_at = None  # the retry is due
    db.session.commit()
    assert "Vous êtes connecté" in buyer.order_page(order)
    assert len(users_for(router_server, latest_order())) == 1


def test_double_submit_makes_one_order_and_one_charge(shop, live_server, provider_sandbox):
    buyer = Buyer(live_server, shop)
    page = buyer.http.get(f"{live_server}/r/{shop.slug}")
    intent = re.search(r'name="intent" value="([^"]+)"', page.text).group(1)
    first = buyer.buy("fedapay", intent=intent)
    second = buyer.buy("fedapay", intent=intent)
    assert first.headers["Location"] == second.headers["Location"]
    assert db.session.scalar(db.select(db.func.count(Order.id))) == 1
    assert len(provider_sandbox.transactions("fedapay")) == 1
