"""The buyer's whole path over real HTTP for each way a payment goes: a push, a network's payment
page, a payment code first, an answer lost then found again, a refusal turned into a payment
later, a network paid in another currency; and what the buy form says about phone numbers,
networks and codes. Kiosque is served on a port, the sandbox providers call its webhooks, the
sandbox router takes the tickets.
"""

import html
import json
import re
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
import requests
from sqlalchemy import event
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import Order, OrderStatus, PaymentAccount, Plan, WebhookEvent, utcnow
from portal.services import setup_kit, worker
from tests.conftest import CREDENTIALS, Buyer, choose, free_port, latest_order, users_for, wait_for
from tests.provider_signing import fedapay_signature


def feexpay_account(shop) -> PaymentAccount:
    return next(a for a in shop.accounts if a.provider == "feexpay")


def enable(shop, *networks: str) -> None:
    """The owner enables these networks on the shop's FeexPay account."""
    feexpay_account(shop).settings = {"networks": list(networks)}
    db.session.commit()


def page_text(response: requests.Response) -> str:
    return html.unescape(response.text)


def orders() -> int:
    return db.session.scalar(db.select(db.func.count(Order.id)))


def field_error(page: str, field: str) -> str:
    """The error shown next to a field of the buy form ("" when there is none)."""
    marker = f'id="{field}-error">'
    return page.split(marker, 1)[1].split("</p>", 1)[0] if marker in page else ""


def provisioned(buyer: Buyer) -> Order:
    wait_for(lambda: latest_order().status == OrderStatus.PROVISIONED)
    order = latest_order()
    assert "Vous êtes connecté" in buyer.order_page(order)
    return order


# -- a network's payment page ---------------------------------------------------------------------


def test_a_payment_page_network_sends_the_buyer_there_and_back(shop, live_server, provider_sandbox, router_server):
    assert "pay.wave.com" not in setup_kit.walled_garden_hosts(shop, "kiosque.example")
    enable(shop, "mtn", "wave_ci")
    assert "pay.wave.com" in setup_kit.walled_garden_hosts(shop, "kiosque.example")
    buyer = Buyer(live_server, shop)
    answer = buyer.buy("feexpay", phone="07 07 00 00 00", network="wave_ci")
    order = latest_order()
    assert answer.status_code == 303 and answer.headers["Location"] == order.checkout_url
    assert order.checkout_url.startswith(f"{provider_sandbox.base_url}/feexpay/pay/")
    assert (order.status, order.payer_phone, order.network) == (OrderStatus.PENDING, "+2250707000000", "wave_ci")
    assert "payment page on 127.0.0.1" in [e.detail for e in order.events if e.kind == "checkout started"][0]
    waiting = buyer.order_page(order)
    assert "Paiement en attente" in waiting and "Payer maintenant" in waiting
    assert "Confirmez sur votre téléphone" not in waiting

    back = choose(order.checkout_url, "approve")  # the buyer pays on Wave's page, which sends them back
    assert back.status_code == 302 and back.headers["Location"] == f"{live_server}/o/{order.code}"
    order = provisioned(buyer)
    assert len(users_for(router_server, order)) == 1 and order.payer_reference


# -- a payment code first -------------------------------------------------------------------------


def test_an_otp_network_asks_for_the_code_then_pays(shop, live_server, provider_sandbox, router_server):
    enable(shop, "mtn", "orange_sn")
    buyer = Buyer(live_server, shop)
    asked = buyer.buy("feexpay", phone="77 123 45 67", network="orange_sn")
    page = page_text(asked)
    assert asked.status_code == 422 and 'name="otp"' in page
    assert "Orange Money (Sénégal) demande un code de paiement" in field_error(page, "otp")
    assert "#144#391#" in field_error(page, "otp")
    assert orders() == 0 and provider_sandbox.transactions("feexpay") == []  # nothing sent without the code

    malformed = page_text(buyer.buy("feexpay", phone="77 123 45 67", network="orange_sn", otp="12"))
    assert "4 à 8 chiffres" in field_error(malformed, "otp") and orders() == 0

    answer = buyer.buy("feexpay", phone="77 123 45 67", network="orange_sn", otp="123456")
    order = latest_order()
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/o/{order.code}")
    assert order.status == OrderStatus.PENDING and "Confirmez sur votre téléphone" in buyer.order_page(order)
    assert "123456" not in json.dumps([e.detail for e in order.events])  # the code is never kept
    provider_sandbox.approve("feexpay", order.provider_ref)
    provisioned(buyer)


def test_a_code_feexpay_asks_for_is_asked_of_the_buyer(shop, live_server, provider_sandbox, router_server):
    """Orange CI may want a code although the sources mostly say it sends a payment page."""
    enable(shop, "orange_ci")
    provider_sandbox.set_knobs(feexpay_flow="otp")
    buyer = Buyer(live_server, shop)
    asked = page_text(buyer.buy("feexpay", phone="0707000000", network="orange_ci"))
    assert "#144*82#" in field_error(asked, "otp") and 'name="otp"' in asked
    assert latest_order().status == OrderStatus.FAILED  # FeexPay refused that request: a new one follows

    provider_sandbox.set_knobs(feexpay_refuse_otp=True)
    refused = page_text(buyer.buy("feexpay", phone="0707000000", network="orange_ci", otp="1234"))
    assert "Ce code de paiement n'a pas été accepté" in field_error(refused, "otp")

    provider_sandbox.set_knobs(feexpay_refuse_otp=False)
    buyer.buy("feexpay", phone="0707000000", network="orange_ci", otp="1234")
    order = latest_order()
    assert order.status == OrderStatus.PENDING
    provider_sandbox.approve("feexpay", order.provider_ref)
    provisioned(buyer)


# -- lost answers -----------------------------------------------------------------------------------


def lost_answer_order(live_server, shop, provider_sandbox) -> tuple[Buyer, Order, str]:
    """A push whose answer was lost: the order is unknown; the payment the sandbox made, by reference."""
    provider_sandbox.set_knobs(outage_after_create=True)
    buyer = Buyer(live_server, shop)
    answer = buyer.buy("feexpay")
    provider_sandbox.set_knobs(outage_after_create=False)
    order = latest_order()
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/o/{order.code}")
    assert (order.status, order.provider_ref) == (OrderStatus.UNKNOWN, None)
    (payment,) = provider_sandbox.transactions("feexpay")
    assert payment["callback_info"] == order.code
    return buyer, order, payment["reference"]


@pytest.mark.parametrize("outcome", ["approve", "decline"])
def test_a_lost_answer_is_unknown_until_the_payment_names_the_order(shop, live_server, provider_sandbox,
                                                                   router_server, outcome):
    buyer, order, reference = lost_answer_order(live_server, shop, provider_sandbox)
    page = buyer.order_page(order)
    assert "nous ne savons pas encore si la demande de paiement est arrivée sur le +229\u00a001\u00a097\u00a000\u00a000\u00a000" in page
    assert "Rien n'a été débité" not in page and 'hx-trigger="every 1s"' in page
    assert latest_order().provider_ref is None  # nothing to ask FeexPay about: only its webhook can tell

    getattr(provider_sandbox, outcome)("feexpay", reference)
    if outcome == "approve":
        order = provisioned(buyer)
    else:
        wait_for(lambda: latest_order().status == OrderStatus.FAILED)
        order = latest_order()
    assert order.provider_ref == reference
    kinds = [e.kind for e in order.events]
    assert kinds[:2] == ["created", "checkout unanswered"]
    assert any(f"reference {reference} taken" in e.detail for e in order.events)


def test_a_webhook_naming_the_order_with_another_payment_is_not_taken(shop, live_server, provider_sandbox,
                                                                     router_server):
    buyer, order, reference = lost_answer_order(live_server, shop, provider_sandbox)
    hook = f"{live_server}/webhooks/feexpay/{feexpay_account(shop).webhook_token}"
    others = requests.post(f"{provider_sandbox.api_url('feexpay')}/api/transactions/public/requesttopay/mtn",
                           headers={"Authorization": f"Bearer {feexpay_account(shop).secrets['token']}"},
                           json={"shop": feexpay_account(shop).secrets["shop_id"], "amount": 200,
                                 "phoneNumber": "2290197000000", "callback_info": "SOMEONEELSE"}).json()["reference"]
    provider_sandbox.approve("feexpay", others)
    for forged in (others, "no-such-reference"):  # another order's payment, one FeexPay does not know
        answer = requests.post(hook, json={"reference": forged, "callback_info": order.code, "status": "SUCCESSFUL"})
        assert answer.status_code == 200
        assert (latest_order().status, latest_order().provider_ref) == (OrderStatus.UNKNOWN, None)
    provider_sandbox.approve("feexpay", reference)
    assert provisioned(buyer).provider_ref == reference


def test_a_lost_answer_expires_and_a_late_payment_still_revives_it(shop, live_server, provider_sandbox,
                                                                   router_server):
    buyer, order, reference = lost_answer_order(live_server, shop, provider_sandbox)
    order.created_at = utcnow() - timedelta(hours=3)
    db.session.commit()
    assert worker.sweep().expired == 1 and latest_order().status == OrderStatus.EXPIRED
    provider_sandbox.approve("feexpay", reference)
    provisioned(buyer)


@pytest.mark.parametrize("provider", ["fedapay", "cinetpay"])
def test_a_hosted_page_nobody_received_fails_honestly(shop, live_server, provider_sandbox, provider):
    provider_sandbox.set_knobs(outage_after_create=True)
    answer = Buyer(live_server, shop).buy(provider)
    assert answer.status_code == 422 and "Rien n'a été débité" in page_text(answer)
    assert latest_order().status == OrderStatus.FAILED


def test_a_push_that_never_left_fails_honestly(app, shop, live_server):
    app.config["FEEXPAY_API_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused
    answer = Buyer(live_server, shop).buy("feexpay")
    assert answer.status_code == 422 and "Rien n'a été débité" in page_text(answer)
    assert latest_order().status == OrderStatus.FAILED


# -- refusals followed by a payment ---------------------------------------------------------------


def test_a_failed_order_is_still_asked_about_until_it_expires(app, shop, live_server, provider_sandbox,
                                                              router_server):
    app.config.update(WORKER_POLL_AFTER=0, FAILED_ORDER_POLL_AFTER=0)
    provider_sandbox.set_knobs(lose_notifications=True, late_approvals=True)
    buyer = Buyer(live_server, shop)
    buyer.buy("cinetpay")
    order = latest_order()
    provider_sandbox.cancel("cinetpay", order.provider_ref)
    page = buyer.order_page(order)  # the buyer's page asks CinetPay: cancelled
    assert latest_order().status == OrderStatus.FAILED and "Paiement non abouti" in page
    assert "restez sur cette page" in page and 'hx-trigger="every 15s"' in page
    assert '<meta http-equiv="refresh" content="15">' in page
    fragment = buyer.http.get(f"{live_server}/o/{order.code}/status", headers={"HX-Request": "true"})
    assert "HX-Refresh" not in fragment.headers and "Paiement non abouti" in fragment.text

    provider_sandbox.approve("cinetpay", order.provider_ref)  # the buyer tried again on CinetPay's page
    assert worker.sweep().polled == 1  # no notification came: the worker asked
    order = provisioned(buyer)
    kinds = [e.kind for e in order.events]
    assert kinds.index("failed") < kinds.index("paid") < kinds.index("provisioned")


def test_failed_orders_are_asked_about_more_slowly_and_not_after_their_ttl(app, shop, live_server,
                                                                          provider_sandbox):
    app.config.update(WORKER_POLL_AFTER=0, FAILED_ORDER_POLL_AFTER=3600)
    buyer = Buyer(live_server, shop)
    buyer.buy("fedapay")
    provider_sandbox.decline("fedapay", latest_order().provider_ref)
    wait_for(lambda: latest_order().status == OrderStatus.FAILED)
    buyer.buy("fedapay")  # and one still waiting
    assert worker.sweep().polled == 1
    app.config["FAILED_ORDER_POLL_AFTER"] = 0
    assert worker.sweep().polled == 2
    db.session.execute(db.update(Order).values(created_at=utcnow() - timedelta(hours=3)))
    db.session.commit()
    failed = db.session.scalar(db.select(Order).where(Order.status == OrderStatus.FAILED))
    assert worker.sweep().polled == 0
    page = buyer.order_page(failed)
    assert "hx-trigger" not in page and "http-equiv" not in page and "restez sur cette page" not in page
    fragment = buyer.http.get(f"{live_server}/o/{failed.code}/status", headers={"HX-Request": "true"})
    assert fragment.headers.get("HX-Refresh") == "true"  # settled: the page reloads once, then stops


def test_a_late_approval_webhook_revives_a_failed_order(shop, live_server, provider_sandbox, router_server):
    provider_sandbox.set_knobs(late_approvals=True)
    buyer = Buyer(live_server, shop)
    buyer.buy("fedapay")
    order = latest_order()
    provider_sandbox.decline("fedapay", order.provider_ref)
    wait_for(lambda: latest_order().status == OrderStatus.FAILED)
    provider_sandbox.approve("fedapay", order.provider_ref)  # FedaPay's support validated the debit
    provisioned(buyer)


# -- the paid path's statements ---------------------------------------------------------------------

STATEMENT = re.compile(r'^\s*(SELECT\b.*?\bFROM|INSERT INTO|UPDATE)\s+"?(\w+)', re.DOTALL)


def test_a_paid_webhook_makes_the_statements_docs_architecture_lists(shop, live_server, provider_sandbox,
                                                                     router_server):
    """Four transactions, each ended before the provider or the router is asked, and nothing through the
    session's unit of work (docs/architecture.md)."""
    provider_sandbox.set_knobs(lose_notifications=True)
    Buyer(live_server, shop).buy("fedapay")
    order = latest_order()
    provider_sandbox.approve("fedapay", order.provider_ref)
    account = next(a for a in shop.accounts if a.provider == "fedapay")
    body = json.dumps({"name": "transaction.approved", "object": "transaction",
                       "entity": {"id": int(order.provider_ref), "status": "approved"}}).encode()
    signature = fedapay_signature(CREDENTIALS["fedapay"]["webhook_secret"], body, int(time.time()))
    here, transactions = threading.get_ident(), [Counter()]

    def statement(conn, cursor, sql, *args):
        if threading.get_ident() != here:  # the server's thread, handling the webhook
            verb, table = STATEMENT.match(sql).groups()
            transactions[-1][f"{verb.split()[0]} {table}"] += 1

    def commit(conn):
        if threading.get_ident() != here:
            transactions.append(Counter())

    flushed = []  # the session's unit of work, which costs as much again as a statement

    def flush(session, context, instances):
        if threading.get_ident() != here:
            flushed.extend(type(obj).__name__ for obj in (*session.new, *session.dirty))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    event.listen(Session, "before_flush", flush)
    try:
        answer = requests.post(f"{live_server}/webhooks/fedapay/{account.webhook_token}", data=body, timeout=30,
                               headers={"Content-Type": "application/json", "X-FEDAPAY-SIGNATURE": signature})
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
        event.remove(Session, "before_flush", flush)
    assert answer.status_code == 200 and latest_order().status == OrderStatus.PROVISIONED
    assert flushed == []
    assert transactions == [
        Counter({"SELECT payment_account": 1, "SELECT order": 1, "INSERT webhook_event": 1, "INSERT order_event": 1}),
        Counter({"UPDATE order": 1, "INSERT order_event": 1, "INSERT ticket": 1}),
        Counter({"UPDATE ticket": 1, "UPDATE order": 1}),
        Counter({"UPDATE ticket": 1, "UPDATE order": 1, "INSERT order_event": 1}),
        Counter(),
    ]


# -- currencies -------------------------------------------------------------------------------------


def xaf_plan(shop) -> Plan:
    plan = Plan(router=shop, label="1 heure Brazza", profile="1h", price=300, currency="XAF", time_limit="1h")
    db.session.add(plan)
    db.session.commit()
    return plan


def test_a_plan_in_xaf_is_paid_on_a_network_paying_xaf(shop, live_server, provider_sandbox, router_server):
    enable(shop, "mtn", "mtn_cg")
    xaf_plan(shop)
    buyer = Buyer(live_server, shop)
    buyer.buy("feexpay", plan_label="1 heure Brazza", phone="06 123 4567", network="mtn_cg")
    order = latest_order()
    assert (order.amount, order.currency, order.payer_phone) == (300, "XAF", "+242061234567")
    provider_sandbox.approve("feexpay", order.provider_ref)
    assert provisioned(buyer).amount == 300


def test_a_plan_in_another_currency_than_the_networks_is_refused_before_any_call(shop, live_server,
                                                                                 provider_sandbox):
    enable(shop, "mtn", "mtn_cg")
    xaf_plan(shop)
    answer = Buyer(live_server, shop).buy("feexpay", plan_label="1 heure Brazza", network="mtn")
    assert answer.status_code == 422
    assert "MTN MoMo (Bénin) paie en XOF et ce forfait est en XAF" in field_error(page_text(answer), "network")
    assert orders() == 0 and provider_sandbox.transactions("feexpay") == []


# -- phone numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["97 00 00 00", "+229 97 00 00 00", "0022997000000", "01 97 00 00 00",
                                   "+229 01 97 00 00 00", "00229 01-97-00-00-00", "2290197000000"])
def test_benin_numbers_in_every_form_buyers_type(shop, live_server, provider_sandbox, typed):
    assert Buyer(live_server, shop).buy("feexpay", phone=typed).status_code == 303
    assert latest_order().payer_phone == "+2290197000000"
    (payment,) = provider_sandbox.transactions("feexpay")
    assert payment["phoneNumber"] == "2290197000000"


@pytest.mark.parametrize(("typed", "said"), [
    ("123", "Ce numéro n'est pas un numéro de mobile valide. Exemple : 01 95 12 34 56."),
    ("01 21 00 00 00", "Ce numéro n'est pas un numéro de mobile valide."),  # a fixed line
    ("+225 07 07 00 00 00", "MTN MoMo (Bénin) demande un numéro de ce pays, par exemple 01 95 12 34 56."),
])
def test_a_wrong_number_is_explained_next_to_the_field(shop, live_server, provider_sandbox, typed, said):
    answer = Buyer(live_server, shop).buy("feexpay", phone=typed)
    page = page_text(answer)
    assert answer.status_code == 422 and said in field_error(page, "phone")
    assert f'value="{typed}"' in page  # what the buyer typed is kept
    assert orders() == 0 and provider_sandbox.transactions("feexpay") == []


def test_the_buy_form_shows_an_example_number(shop, live_server):
    page = requests.get(f"{live_server}/r/{shop.slug}").text
    assert "Exemple : 01 95 12 34 56" in page


def test_a_number_the_provider_refuses_is_explained_in_french(app, shop, live_server, receiver):
    receiver.status, receiver.body = 400, json.dumps({"message": "Invalid phone number"})
    app.config["FEEXPAY_API_URL"] = receiver.url("")
    answer = Buyer(live_server, shop).buy("feexpay")
    page = page_text(answer)
    assert answer.status_code == 422 and "Invalid phone number" not in page
    assert "MTN MoMo (Bénin) refuse ce numéro" in field_error(page, "phone")


@pytest.mark.parametrize("provider, setting", [("feexpay", "FEEXPAY_API_URL"), ("fedapay", "FEDAPAY_SANDBOX_API_URL")])
def test_keys_the_provider_refuses_are_no_buyer_s_fault(app, shop, live_server, receiver, provider, setting):
    receiver.status, receiver.body = 401, json.dumps({"message": "Unauthorized"})
    app.config[setting] = receiver.url("")
    answer = Buyer(live_server, shop).buy(provider)
    page = page_text(answer)
    assert answer.status_code == 422 and "Unauthorized" not in page and "HTTP 401" not in page
    assert "Ce moyen de paiement n'est pas disponible pour le moment. Rien n'a été débité" in page
    assert latest_order().status == OrderStatus.FAILED


def test_a_hosted_page_provider_takes_an_optional_number_in_any_form(shop, live_server, provider_sandbox):
    buyer = Buyer(live_server, shop)
    assert buyer.buy("fedapay", phone="", network="").status_code == 303
    assert latest_order().payer_phone == ""
    assert buyer.buy("fedapay", phone="97 00 00 00", network="").status_code == 303
    assert latest_order().payer_phone == "+2290197000000"
    assert "Exemple" in field_error(page_text(buyer.buy("fedapay", phone="42", network="")), "phone")


def test_the_code_comes_back_with_the_number_in_any_form(shop, live_server, provider_sandbox, router_server):
    buyer = Buyer(live_server, shop)
    buyer.buy("feexpay", phone="97 00 00 00")
    provider_sandbox.approve("feexpay", latest_order().provider_ref)
    order = provisioned(buyer)
    for typed in ("97000000", "+229 01 97 00 00 00", "0022997000000", "2290197000000"):
        found = requests.post(f"{live_server}/retrieve", data={"reference": order.payer_reference, "phone": typed})
        assert found.status_code == 200 and order.ticket.username in found.text, typed
    for typed in ("0196000000", "+2250197000000", "97"):
        assert requests.post(f"{live_server}/retrieve",
                             data={"reference": order.payer_reference, "phone": typed}).status_code == 404, typed


# -- networks, notifications ------------------------------------------------------------------------


def test_a_network_kiosque_no_longer_offers_is_neither_shown_nor_charged(shop, live_server, provider_sandbox):
    enable(shop, "mtn", "coris")
    buyer = Buyer(live_server, shop)
    page = requests.get(f"{live_server}/r/{shop.slug}").text
    assert 'value="mtn"' in page and 'value="coris"' not in page
    refused = buyer.buy("feexpay", network="coris")
    assert "Choisissez votre réseau" in field_error(page_text(refused), "network")
    assert orders() == 0


def test_a_status_check_refusing_the_token_asks_for_the_notification_again(shop, live_server, provider_sandbox):
    Buyer(live_server, shop).buy("feexpay")
    order = latest_order()
    provider_sandbox.set_knobs(feexpay_status_unauthorized=True)
    hook = f"{live_server}/webhooks/feexpay/{feexpay_account(shop).webhook_token}"
    notice = {"reference": order.provider_ref, "callback_info": order.code, "status": "SUCCESSFUL"}
    assert requests.post(hook, json=notice).status_code == 503
    provider_sandbox.set_knobs(feexpay_status_unauthorized=False)
    assert requests.post(hook, json=notice).status_code == 200
    assert db.session.scalar(db.select(db.func.count(WebhookEvent.id))) == 2


def test_a_multipart_ipn_is_taken(shop, live_server, provider_sandbox, router_server):
    provider_sandbox.set_knobs(cinetpay_ipn_encoding="multipart")
    buyer = Buyer(live_server, shop)
    buyer.buy("cinetpay")
    order = latest_order()
    provider_sandbox.approve("cinetpay", order.provider_ref)
    wait_for(lambda: latest_order().status == OrderStatus.PROVISIONED)
    (event,) = db.session.scalars(db.select(WebhookEvent)).all()
    assert event.headers["content-type"].startswith("multipart/form-data") and event.outcome == "checked"


def test_fedapay_refusing_the_customer_still_opens_its_page(shop, live_server, provider_sandbox):
    provider_sandbox.set_knobs(fedapay_refuse_customer="with_phone")
    answer = Buyer(live_server, shop).buy("fedapay")
    assert answer.status_code == 303 and answer.headers["Location"].startswith(provider_sandbox.base_url)
    (payment,) = provider_sandbox.transactions("fedapay")
    assert payment["customer"] is None
