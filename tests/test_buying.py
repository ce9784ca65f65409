"""The buyer's whole path over real HTTP: Kiosque served on a port, the sandbox providers calling
its webhooks, the sandbox router taking the tickets."""

import html
import re
import time

import pytest
import requests

from portal.extensions import db
from portal.models import Order, OrderStatus, Router, WebhookEvent
from tests.conftest import CLIENT_IP, Buyer, latest_order, users_for, wait_for

PROVIDERS = ("fedapay", "cinetpay", "feexpay")


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
    """The sandbox declines for the wallet's balance: the buyer is told so; a cancel is a plain failure."""
    buyer = Buyer(live_server, shop)
    buyer.buy(provider, plan_label="1 jour")
    order = latest_order()
    getattr(provider_sandbox, outcome)(provider, order.provider_ref)
    heading = {"decline": "<h1>Solde insuffisant</h1>", "cancel": "<h1>Paiement non abouti</h1>"}[outcome]
    wait_for(lambda: heading in buyer.order_page(latest_order()))
    order = latest_order()
    assert order.status == OrderStatus.FAILED and router_server.users() == []
    assert order.failure_reason == ("insufficient funds" if outcome == "decline" else None)
    failed = next(e for e in order.events if e.kind in ("failed", "expired"))
    assert failed.facts["source"] in ("webhook", "order page", "buyer returned", "worker poll")  # who found out
    page = buyer.order_page(order)
    if outcome == "decline":
        assert "le solde de votre compte ne couvre pas 500\u00a0FCFA" in page
    # "Réessayer": the plans page again, with the plan, the way to pay and the phone the buyer chose.
    again = requests.get(live_server + re.search(r'<a class="button wide" href="([^"]+)">Réessayer</a>', page).group(1))
    assert re.findall(r'name="plan_id" value="(\d+)"[^>]* checked', again.text) == [str(order.plan_id)]
    assert re.findall(r'name="account_id" value="(\d+)"[^>]* checked', again.text) == [str(order.account_id)]
    assert 'value="+229 01 97 00 00 00"' in again.text and f'name="mac" value="{order.client_mac}"' in again.text


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


@pytest.mark.parametrize("provider", ["fedapay", "cinetpay"])
def test_provider_down_at_checkout(shop, live_server, provider_sandbox, provider):
    """The buyer never got the hosted page: nothing can have been paid."""
    provider_sandbox.set_knobs(outage=True)
    response = Buyer(live_server, shop).buy(provider)
    assert response.status_code == 422
    assert "Rien n'a été débité" in html.unescape(response.text)
    assert latest_order().status == OrderStatus.FAILED


def test_push_provider_down_at_checkout_is_not_called_a_failure(shop, live_server, provider_sandbox):
    """A 503 after the request left may come from a proxy while the push rings the phone all the same."""
    provider_sandbox.set_knobs(outage=True)
    buyer = Buyer(live_server, shop)
    response = buyer.buy("feexpay")
    order = latest_order()
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/o/{order.code}")
    assert order.status == OrderStatus.UNKNOWN and "503" in order.last_error
    page = buyer.order_page(order)
    assert "Demande envoyée ?" in page and "Rien n'a été débité" not in page


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
    order.next_attempt_at = None  # time passes: the retry is due, the router's backoff over
    db.session.execute(db.update(Router).values(retry_at=None))
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


def buy_form(live_server: str, shop: Router, provider: str) -> dict:
    """What the plans page's form posts for the first plan and this provider."""
    page = requests.get(f"{live_server}/r/{shop.slug}").text
    account = next(a for a in shop.accounts if a.provider == provider)
    return {"intent": re.search(r'name="intent" value="([^"]+)"', page).group(1), "plan_id": shop.plans[0].id,
            "account_id": account.id, "phone": "2290197000000", "network": "mtn"}


@pytest.mark.parametrize("provider", ["fedapay", "cinetpay"])
def test_a_double_tap_during_the_checkout_lands_on_the_payment_page_too(shop, live_server, provider_sandbox, provider):
    """The second submit arrives while the first is still asking the provider: it waits for the link."""
    from concurrent.futures import ThreadPoolExecutor

    provider_sandbox.set_knobs(api_latency=1.0)
    form, url = buy_form(live_server, shop, provider), f"{live_server}/r/{shop.slug}/buy"
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(requests.post, url, data=form, allow_redirects=False)
        wait_for(lambda: latest_order() is not None)
        assert latest_order().status == OrderStatus.CREATED  # the first request is still at the provider
        second = requests.post(url, data=form, allow_redirects=False)
        first = first.result()
    order = latest_order()
    assert first.status_code == second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"] == order.checkout_url.replace("&amp;", "&")
    assert second.headers["Location"].startswith(provider_sandbox.base_url)
    assert db.session.scalar(db.select(db.func.count(Order.id))) == 1
    assert len(provider_sandbox.transactions(provider)) == 1


def test_a_double_tap_waits_for_the_checkout_a_bounded_time(app, shop, live_server, provider_sandbox):
    """A provider slower than the wait: the second tap gets the order page, which brings the link itself."""
    from concurrent.futures import ThreadPoolExecutor

    app.config["CHECKOUT_WAIT"] = 0.5
    provider_sandbox.set_knobs(api_latency=2.0)
    form, url = buy_form(live_server, shop, "fedapay"), f"{live_server}/r/{shop.slug}/buy"
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(requests.post, url, data=form, allow_redirects=False)
        wait_for(lambda: latest_order() is not None)
        second = requests.post(url, data=form, allow_redirects=False)
        order = latest_order()
        assert second.headers["Location"] == f"/o/{order.code}" and order.status == OrderStatus.CREATED
        assert "Ouverture du paiement" in html.unescape(requests.get(live_server + second.headers["Location"]).text)
        assert first.result().status_code == 303
    page = html.unescape(requests.get(live_server + second.headers["Location"]).text)
    assert "Paiement en attente" in page and re.search(r'<a class="button wide" href="[^"]+">Payer maintenant</a>', page)


def test_a_reference_the_account_already_has_fails_the_checkout_cleanly(shop, live_server, provider_sandbox):
    """A provider's test account reset hands out an old transaction id again: a clear page, no 500."""
    buyer = Buyer(live_server, shop)
    buyer.buy("fedapay")
    first = latest_order()
    first.provider_ref = str(int(first.provider_ref) + 1)  # an older order holds the id the provider gives next
    db.session.commit()
    page = buyer.buy("fedapay")
    assert page.status_code == 422 and "Rien n'a été débité" in html.unescape(page.text)
    second = latest_order()
    assert second.id != first.id and second.status == OrderStatus.FAILED and second.provider_ref is None
    assert "already used" in second.last_error


def test_an_order_page_asks_the_provider_at_most_once_per_gap(app, shop, live_server, provider_sandbox):
    """Hits on the order page or its return address, even at once, never multiply calls with the owner's key."""
    from concurrent.futures import ThreadPoolExecutor

    app.config["PROVIDER_CHECK_GAP"] = 1
    buyer = Buyer(live_server, shop)
    buyer.buy("fedapay")
    order = latest_order()
    before = provider_sandbox.api_calls["fedapay_get"]
    started = time.monotonic()

    def hit(n: int) -> int:
        url = f"{live_server}/o/{order.code}"
        if n % 2:  # the provider's return, with its hint
            return requests.get(url, params={"id": order.provider_ref, "status": "approved"}, timeout=30).status_code
        return requests.post(url, data={"transaction_id": order.code}, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(hit, range(40))) == {200}
    elapsed = time.monotonic() - started
    calls = provider_sandbox.api_calls["fedapay_get"] - before
    assert 1 <= calls <= 1 + elapsed, f"{calls} status calls in {elapsed:.1f} s"
