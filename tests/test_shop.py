"""Buyer pages and provider callbacks around the purchase: retrieval, the guide's links, bad input."""

import html
import json
import re
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from portal.extensions import db, mail
from portal.models import Order, OrderStatus, PaymentAccount, Plan, Router, WebhookEvent
from portal.services import owners, worker
from tests.conftest import CLIENT_IP, CLIENT_MAC, CREDENTIALS, PHONE, Buyer, latest_order, users_for, wait_for
from tests.provider_signing import cinetpay_x_token, fedapay_signature


def paid_and_provisioned(live_server, shop, provider_sandbox, provider="fedapay") -> Order:
    Buyer(live_server, shop).buy(provider)
    order = latest_order()
    provider_sandbox.approve(provider, order.provider_ref)
    wait_for(lambda: latest_order().status == OrderStatus.PROVISIONED)
    return latest_order()


def text(response) -> str:
    return html.unescape(response.text)


@pytest.mark.parametrize("provider", ["fedapay", "cinetpay"])
def test_return_before_the_webhook_makes_one_ticket(shop, live_server, provider_sandbox, router_server, provider):
    provider_sandbox.set_knobs(notification_delay=1.0)
    buyer = Buyer(live_server, shop)
    checkout = buyer.buy(provider).headers["Location"]
    page = buyer.http.get(checkout)
    action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
    back = buyer.http.post(requests.compat.urljoin(checkout, action), data={"action": "approve"})
    if provider == "cinetpay":  # its page posts transaction_id and token back to the order page
        form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', back.text, re.S)
        back = buyer.http.post(html.unescape(form.group(1)),
                               data=dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2))))
    else:  # FedaPay sends the buyer back with ?id=…
        assert "id=" in back.url
    assert "/o/" in back.url and "Vous êtes connecté" in text(back)  # the return alone got the ticket
    provider_sandbox.drain(timeout=5)  # then the late webhook arrives
    order = latest_order()
    assert len(users_for(router_server, order)) == 1
    assert [e.kind for e in order.events].count("provisioned") == 1


def test_a_return_posted_is_checked_then_answered_with_a_redirect(shop, live_server, provider_sandbox, router_server):
    """CinetPay brings the buyer back with a POST: checked at once, then a GET page a reload does not re-post."""
    provider_sandbox.set_knobs(lose_notifications=True)
    buyer = Buyer(live_server, shop)
    buyer.buy("cinetpay")
    order = latest_order()
    provider_sandbox.approve("cinetpay", order.provider_ref)
    back = buyer.http.post(f"{live_server}/o/{order.code.lower()}", allow_redirects=False,
                           data={"transaction_id": order.code, "token": "returned"})
    assert back.status_code == 303 and back.headers["Location"] == f"/o/{order.code}"
    assert latest_order().status == OrderStatus.PROVISIONED  # the return alone made the ticket
    assert len(users_for(router_server, order)) == 1
    page = buyer.http.get(live_server + back.headers["Location"])
    assert page.status_code == 200 and "Vous êtes connecté" in text(page)


def test_one_email_to_the_owner_per_sale_sent_by_the_worker(shop, live_server, provider_sandbox, app):
    provider_sandbox.set_knobs(duplicate_notifications=3)
    with mail.record_messages() as outbox:
        order = paid_and_provisioned(live_server, shop, provider_sandbox)
        provider_sandbox.drain(timeout=5)
        assert outbox == []  # the webhook's answer waits for no mail server
        assert worker.sweep().emails == 1
        assert worker.sweep().emails == 0
    assert len(outbox) == 1
    assert outbox[0].recipients == ["maquis@example.com"] and order.plan_label in outbox[0].subject
    assert "sale email sent" in [e.kind for e in latest_order().events]


def test_the_ticket_page_gives_the_plans_terms_and_says_to_keep_the_order_code(shop, live_server, provider_sandbox):
    plan = next(p for p in shop.plans if p.label == "1 heure")
    plan.validity = "1d"  # Mikhmon's validity: an hour of connection, to use within a day
    db.session.commit()
    order = paid_and_provisioned(live_server, shop, provider_sandbox)
    page = Buyer(live_server, shop).order_page(order)
    assert "1 heure : 1 h · valable 1 jour" in page
    assert (f"Gardez aussi le numéro de commande {order.code} : avec le numéro qui a payé, il permet de "
            "retrouver ce ticket.") in page


def test_retrieve_the_code_with_the_reference_and_phone(shop, live_server, provider_sandbox):
    order = paid_and_provisioned(live_server, shop, provider_sandbox)
    http = requests.Session()
    for reference in (order.payer_reference, order.code, order.code.lower()):
        found = http.post(f"{live_server}/retrieve", data={"reference": reference, "phone": "+229 01 97 00 00 00"})
        assert found.status_code == 200 and order.ticket.username in found.text, reference
    wrong_phone = http.post(f"{live_server}/retrieve", data={"reference": order.code, "phone": "22900000000"})
    unknown = http.post(f"{live_server}/retrieve", data={"reference": "NOPE123456", "phone": PHONE})
    assert wrong_phone.status_code == unknown.status_code == 404
    assert text(wrong_phone).split("<main>")[1] == text(unknown).split("<main>")[1].replace(
        'value="NOPE123456"', f'value="{order.code}"').replace('value="2290197000000"', 'value="22900000000"')
    assert order.ticket.username not in wrong_phone.text


def test_a_buyers_error_page_keeps_the_buyers_layout(shop, live_server):
    for path in ("/o/NOSUCHCODE", "/r/no-such-router", "/o/NOSUCHCODE/status"):
        page = requests.get(live_server + path)
        assert page.status_code == 404 and "Cette page n'existe pas." in text(page), path
        assert '<body class="shop">' in page.text and "Récupérer mon code" in text(page)
        assert not re.search(r'href="/(owner[^"]*)?"', page.text), path  # nothing leads to the owners' pages


def test_the_guides_buy_links_find_the_plan_and_charge_only_its_price(shop, live_server, provider_sandbox):
    fedapay = next(a for a in shop.accounts if a.provider == "fedapay")
    fedapay.public_id = "pk_sandbox_shop"
    db.session.commit()
    query = {"nasid": "hotspot1", "amount": "200", "currency": "FCFA", "profile_name": "1h", "timelimit": "1h",
             "mac": CLIENT_MAC, "ip": CLIENT_IP, "pub_key": "pk_sandbox_shop"}
    page = requests.get(f"{live_server}/buy-mikhmon", params=query)
    assert page.status_code == 200
    plans = re.findall(r'name="plan_id" value="(\d+)"', page.text)
    assert len(plans) == 1 and "200\u00a0FCFA" in text(page)
    assert f'name="mac" value="{CLIENT_MAC}"' in page.text
    # A tampered amount, an unknown profile or an unknown key: a clear page, nothing charged.
    for bad in ({"amount": "5"}, {"profile_name": "1w"}, {"pub_key": "pk_other"}):
        refused = requests.get(f"{live_server}/buy-mikhmon", params={**query, **bad})
        assert refused.status_code == 404 and "Rien n'a été débité" in text(refused)
    assert provider_sandbox.transactions("fedapay") == []
    assert requests.get(f"{live_server}/retrieve-mikhmon-code", allow_redirects=False).headers["Location"].endswith("/retrieve")


def test_buy_with_tampered_plan_or_account_is_refused(shop, live_server, provider_sandbox, app):
    other_owner = owners.create_owner("other@example.com", "other-password")
    foreign = PaymentAccount(owner=other_owner, provider="fedapay", label="x", credentials="{}", environment="sandbox")
    db.session.add(foreign)
    db.session.commit()
    buyer = Buyer(live_server, shop)
    for extra in ({"account_id": foreign.id}, {"plan_id": 99999}, {"plan_id": "x"}):
        refused = buyer.buy("fedapay", **extra)
        assert refused.status_code == 422 and "n'est plus proposé" in text(refused)
    assert db.session.scalar(db.select(db.func.count(Order.id))) == 0


def payment_options(page: str) -> dict[str, dict]:
    """Each payment option of a plans page by provider: its wallets, networks, the network checked."""
    found = {}
    for block in re.findall(r'<div class="option">(.*?)</div>', page, re.S):
        account = db.session.get(PaymentAccount, int(re.search(r'name="account_id" value="(\d+)"', block).group(1)))
        networks = re.findall(r'name="network" value="(\w+)"[^>]*>\s*<span>([^<]+)</span>', block)
        found[account.provider] = {"wallets": html.unescape(re.search(r"<strong>([^<]+)</strong>", block).group(1)),
                                   "networks": networks, "checked": re.findall(r'value="(\w+)" checked', block)}
    return found


def test_payment_options_are_named_by_the_wallets_of_the_hotspots_country(shop, live_server):
    def options(country: str) -> tuple[dict, str]:
        shop.country = country
        db.session.commit()
        page = requests.get(f"{live_server}/r/{shop.slug}").text
        return payment_options(page), html.unescape(page)

    benin, page = options("bj")
    assert benin == {
        "fedapay": {"wallets": "MTN MoMo, Moov Money, Celtiis Cash, Coris Money", "networks": [], "checked": []},
        "cinetpay": {"wallets": "MTN MoMo, Moov Money", "networks": [], "checked": []},
        # Only the option that charges a phone asks for the network, and none is chosen in advance.
        "feexpay": {"wallets": "MTN MoMo, Moov Money, Celtiis Cash", "checked": [],
                    "networks": [("mtn", "MTN MoMo"), ("moov", "Moov Money"), ("celtiis_bj", "Celtiis Cash")]},
    }
    assert "Exemple : 01 95 12 34 56." in page
    ivory_coast, page = options("ci")
    assert ivory_coast["fedapay"]["wallets"] == "MTN MoMo"
    assert ivory_coast["cinetpay"]["wallets"] == "Orange Money, MTN MoMo, Moov Money, Wave"
    # The account charges Beninese networks only: they are offered, with their country.
    assert ivory_coast["feexpay"]["networks"][0] == ("mtn", "MTN MoMo (Bénin)")
    assert "Exemple : 01 23 45 6789." in page
    burkina, _ = options("bf")
    assert burkina["fedapay"]["wallets"] == "FedaPay"  # no wallet known there: the provider's name


def test_a_purchase_error_naming_a_field_is_shown_next_to_it(app, shop):
    from portal.blueprints import shop as views
    from portal.services.purchase import HotspotContext

    def page(**error) -> str:
        with app.test_request_context(f"/r/{shop.slug}"):
            return views._plans_page(shop, HotspotContext(), **error)[0]

    phone = page(error="Ce numéro n'est pas un numéro Mobile Money du Bénin.", error_field="phone")
    field = re.search(r'<input type="tel" name="phone"[^>]*>\s*(<p[^>]*>[^<]*</p>)', phone)
    assert field and "Ce numéro n'est pas" in html.unescape(field.group(1)) and 'role="alert"' in field.group(1)
    assert 'aria-invalid="true" aria-describedby="phone-error" autofocus' in field.group(0)
    assert phone.count("Ce numéro n&#39;est pas") == 1  # not on top as well
    network = page(error="Choisissez votre réseau Mobile Money.", error_field="network")
    block = re.search(r'<legend>Votre réseau</legend>\s*<p class="error" role="alert" id="network-error">', network)
    assert block is not None
    code = page(error="Ce code de paiement n'a pas été accepté.", error_field="otp")  # the field comes with it
    assert re.search(r'<input name="otp"[^>]*aria-invalid="true"[^>]*>\s*<p class="error" role="alert" id="otp-error">',
                     code)
    for field_name in (None, "intent"):  # no field, or one this page has no input for: on top
        top = page(error="Le service de paiement ne répond pas.", error_field=field_name)
        assert re.search(r'<h1>[^<]*</h1>\s*<p class="error" role="alert">Le service', top)


def test_the_phone_waiting_page_says_what_to_do_when_nothing_arrives(app, shop, live_server):
    buyer = Buyer(live_server, shop)
    buyer.buy("feexpay", plan_label="1 jour", network="moov")
    order = latest_order()
    page = buyer.order_page(order)
    assert "Une demande de paiement a été envoyée au +229\u00a001\u00a097\u00a000\u00a000\u00a000 (Moov Money)." in page
    expires = (order.created_at + timedelta(seconds=app.config["ORDER_TTL"])).astimezone(ZoneInfo("Africa/Porto-Novo"))
    assert f"Sans validation, la demande est abandonnée à {expires:%H:%M}." in page
    assert "Rien ne s'affiche ?" in page and "votre compte Moov Money a au moins 500\u00a0FCFA" in page
    assert "Ouvrez le menu Moov Money de votre téléphone" in page
    assert not re.search(r"[*#]\d+[*#\d]*#", page), "no USSD code: none was checked on an operator's own page"
    assert "téléphone simulé" not in page  # not the demo

    # "Changer de numéro ou de réseau": the form again, filled in with what the buyer chose.
    change = re.search(r'<a class="button wide" href="([^"]+)">Changer de numéro ou de réseau</a>', page).group(1)
    form = requests.get(live_server + html.unescape(change)).text
    feexpay = next(a for a in shop.accounts if a.provider == "feexpay")
    plan = next(p for p in shop.plans if p.label == "1 jour")
    assert re.findall(r'name="plan_id" value="(\d+)"[^>]* checked', form) == [str(plan.id)]
    assert re.findall(r'name="account_id" value="(\d+)"[^>]* checked', form) == [str(feexpay.id)]
    assert payment_options(form)["feexpay"]["checked"] == ["moov"]
    assert 'name="phone" inputmode="tel" autocomplete="tel" maxlength="20" value="+229 01 97 00 00 00"' in form  # as it reads
    assert f'name="mac" value="{CLIENT_MAC}"' in form and 'name="dst" value="http://example.com/"' in form
    assert re.search(r'name="intent" value="([^"]+)"', form).group(1) != order.intent  # a new order

    # The time is the hotspot's, in its country's zone: an hour behind the server's in Abidjan.
    shop.country = "ci"
    db.session.commit()
    assert f"abandonnée à {expires.astimezone(ZoneInfo('Africa/Abidjan')):%H:%M}." in buyer.order_page(order)


def test_the_buyer_cancels_and_a_late_approval_still_makes_the_ticket(shop, live_server, provider_sandbox, router_server):
    buyer = Buyer(live_server, shop)
    buyer.buy("feexpay")
    order = latest_order()
    cancelled = buyer.http.post(f"{live_server}/o/{order.code}/cancel", allow_redirects=False)
    assert cancelled.status_code == 303 and cancelled.headers["Location"] == f"/o/{order.code}"
    order = latest_order()
    assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "cancelled by buyer")
    assert {"cause": "buyer"} in [e.facts for e in order.events]
    page = buyer.order_page(order)
    assert "Commande annulée" in page and "refusez-la" in page and "Réessayer" in page
    # The prompt was already on the phone, and the buyer approved it anyway: the money makes the ticket.
    provider_sandbox.approve("feexpay", order.provider_ref)
    wait_for(lambda: latest_order().status == OrderStatus.PROVISIONED)
    assert len(users_for(router_server, order)) == 1
    # Cancelling a paid order changes nothing.
    assert buyer.http.post(f"{live_server}/o/{order.code}/cancel").status_code == 200
    assert latest_order().status == OrderStatus.PROVISIONED


def test_feexpay_needs_a_phone_and_an_enabled_network(shop, live_server):
    buyer = Buyer(live_server, shop)
    assert "Indiquez le numéro" in text(buyer.buy("feexpay", phone=""))
    assert "Choisissez votre réseau" in text(buyer.buy("feexpay", network="orange_sn"))


def test_hotspot_parameters_are_escaped_and_dst_is_never_a_redirect(shop, live_server):
    evil = {"mac": '"><script>alert(1)</script>', "ip": "10.0.0.1<b>", "dst": "javascript:alert(1)",
            "server": "<svg onload=x>"}
    page = requests.get(f"{live_server}/r/{shop.slug}", params=evil).text
    assert "<script>alert" not in page and "<svg" not in page and "javascript:" not in page
    assert 'name="mac" value=""' in page and 'name="dst" value=""' in page


def test_webhook_edge_cases(shop, live_server):
    cinetpay = next(a for a in shop.accounts if a.provider == "cinetpay")
    base = f"{live_server}/webhooks"
    assert requests.get(f"{base}/cinetpay/{cinetpay.webhook_token}").status_code == 200  # CinetPay's ping
    assert requests.post(f"{base}/cinetpay/not-a-token", data={"cpm_trans_id": "X"}).status_code == 404
    assert requests.post(f"{base}/paypal/{cinetpay.webhook_token}", data={}).status_code == 404
    # A token used with another provider's name is unknown too.
    assert requests.post(f"{base}/fedapay/{cinetpay.webhook_token}", json={}).status_code == 404
    assert requests.post(f"{base}/cinetpay/{cinetpay.webhook_token}", data="%%%&&&=",
                         headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 400
    fedapay = next(a for a in shop.accounts if a.provider == "fedapay")
    assert requests.post(f"{base}/fedapay/{fedapay.webhook_token}", data=b"{not json",
                         headers={"X-FEDAPAY-SIGNATURE": "t=1,s=00"}).status_code == 400
    too_big = requests.post(f"{base}/fedapay/{fedapay.webhook_token}", data=b"x" * (65 * 1024))
    assert too_big.status_code == 413
    outcomes = [e.outcome for e in db.session.scalars(db.select(WebhookEvent).order_by(WebhookEvent.id))]
    assert outcomes == ["ping", "invalid", "invalid"]


def test_a_webhook_for_another_owners_order_changes_nothing(shop, live_server, provider_sandbox, router_server):
    """Owner B's FeexPay token cannot move owner A's order, whatever the body says."""
    Buyer(live_server, shop).buy("feexpay")
    order = latest_order()
    other = owners.create_owner("b@example.com", "b-password")
    theirs = PaymentAccount(owner=other, provider="feexpay", label="b", environment="live",
                            credentials='{"shop_id": "shop123456789ab", "token": "fp_shop_token"}')
    db.session.add(theirs)
    db.session.commit()
    provider_sandbox.approve("feexpay", order.provider_ref)
    response = requests.post(f"{live_server}/webhooks/feexpay/{theirs.webhook_token}",
                             json={"reference": order.provider_ref, "status": "SUCCESSFUL"})
    assert response.status_code == 200
    event = db.session.scalar(db.select(WebhookEvent).where(WebhookEvent.account_id == theirs.id))
    assert event.outcome == "unknown order" and event.order_id is None


def test_order_page_works_without_javascript(shop, live_server):
    Buyer(live_server, shop).buy("fedapay")
    page = requests.get(f"{live_server}/o/{latest_order().code}").text
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page
    assert 'hx-trigger="every 1s"' in page
    assert requests.get(f"{live_server}/o/NOSUCHCODE").status_code == 404


def test_buyer_pages_load_nothing_from_other_hosts(shop, live_server):
    Buyer(live_server, shop).buy("fedapay")
    for path in (f"/r/{shop.slug}", f"/o/{latest_order().code}", "/retrieve"):
        page = requests.get(live_server + path).text
        loaded = re.findall(r'src="([^"]+)"', page) + re.findall(r'<link [^>]*href="([^"]+)"', page)
        assert loaded and all(url.startswith("/static/") for url in loaded), loaded


@pytest.mark.parametrize("provider", ["fedapay", "cinetpay"])
def test_validly_signed_notification_for_an_unpaid_payment_makes_no_ticket(shop, live_server, router_server, provider):
    """Someone holding the signing secret (or a replay) claims success: the status API says pending."""
    Buyer(live_server, shop).buy(provider)
    order = latest_order()
    account = next(a for a in shop.accounts if a.provider == provider)
    url = f"{live_server}/webhooks/{provider}/{account.webhook_token}"
    secret = CREDENTIALS[provider]["webhook_secret" if provider == "fedapay" else "secret_key"]
    if provider == "fedapay":
        body = json.dumps({"name": "transaction.approved", "object": "transaction",
                           "entity": {"id": int(order.provider_ref), "status": "approved", "amount": 200,
                                      "custom_metadata": {"order_code": order.code}}}).encode()
        response = requests.post(url, data=body, headers={
            "Content-Type": "application/json", "X-FEDAPAY-SIGNATURE": fedapay_signature(secret, body, int(time.time()))})
    else:
        fields = {"cpm_site_id": CREDENTIALS["cinetpay"]["site_id"], "cpm_trans_id": order.code, "cpm_amount": "200", "cpm_currency": "XOF"}
        response = requests.post(url, data=fields, headers={"x-token": cinetpay_x_token(secret, fields)})
    assert response.status_code == 200
    event = db.session.scalar(db.select(WebhookEvent).order_by(WebhookEvent.id.desc()))
    assert event.signature_valid is True and event.order_id == order.id
    assert latest_order().status == OrderStatus.PENDING and router_server.users() == []


def test_fedapay_events_replayed_past_the_tolerance_are_refused(shop, live_server, provider_sandbox, router_server):
    provider_sandbox.set_knobs(stale_signatures=True)
    Buyer(live_server, shop).buy("fedapay")
    order = latest_order()
    provider_sandbox.approve("fedapay", order.provider_ref)
    provider_sandbox.drain(timeout=5)
    events = db.session.scalars(db.select(WebhookEvent)).all()
    assert events and all(e.outcome == "invalid" for e in events)
    assert latest_order().status == OrderStatus.PENDING and router_server.users() == []


def test_currency_mismatch_is_not_applied(shop, live_server, provider_sandbox, router_server):
    buyer = Buyer(live_server, shop)
    buyer.buy("fedapay")
    order = latest_order()
    order.currency = "XAF"
    db.session.commit()
    provider_sandbox.approve("fedapay", order.provider_ref)
    provider_sandbox.drain(timeout=5)
    order = latest_order()
    assert order.status == OrderStatus.PENDING and "amount mismatch" in [e.kind for e in order.events]


def test_login_target_comes_from_the_router_never_from_the_link(shop, live_server, provider_sandbox):
    shop.login_by = "cookie,http-chap"  # no server-side login for this client: the browser logs in
    db.session.commit()
    buyer = Buyer(live_server, shop)
    buyer.http.get(f"{live_server}/r/{shop.slug}", params={"login": "http://evil.example/login",
                                                           "link-login-only": "http://evil.example/"})
    buyer.buy("fedapay", ip="10.9.9.9", dst="http://evil.example/phish")
    order = latest_order()
    provider_sandbox.approve("fedapay", order.provider_ref)
    wait_for(lambda: latest_order().status == OrderStatus.PROVISIONED)
    page = buyer.order_page(latest_order())
    refresh = re.search(r'<meta http-equiv="refresh" content="3;url=([^"]+)">', page).group(1)
    assert refresh.startswith("http://wifi.net/login?dst=") and "#username=" in refresh
    assert "evil.example/login" not in page


def test_a_guide_link_whose_public_id_two_owners_have_leads_nowhere(shop, live_server, provider_sandbox):
    """Saved before Kiosque refused it: the link could lead to either owner's checkout, so it leads to neither."""
    fedapay = next(a for a in shop.accounts if a.provider == "fedapay")
    fedapay.public_id = "pk_sandbox_shop"
    other = owners.create_owner("other@example.com", "other-password")
    router = Router(owner=other, name="Ailleurs", host="192.0.2.9", api_username="a", api_password="p",
                    hotspot_server="hotspot1")
    taken = PaymentAccount(owner=other, provider="fedapay", label="Pris", environment="sandbox",
                           credentials=json.dumps(CREDENTIALS["fedapay"]), public_id="pk_sandbox_shop")
    router.accounts.append(taken)
    db.session.add_all([router, taken, Plan(router=router, label="1 heure", profile="1h", price=200)])
    db.session.commit()
    query = {"nasid": "hotspot1", "amount": "200", "profile_name": "1h", "pub_key": "pk_sandbox_shop"}
    for _ in range(3):
        page = requests.get(f"{live_server}/buy-mikhmon", params=query)
        assert page.status_code == 404 and "Lien de paiement invalide" in text(page)

    # Once the other owner's account is gone, the link is the shop's again.
    db.session.delete(taken)
    db.session.commit()
    page = requests.get(f"{live_server}/buy-mikhmon", params=query)
    assert page.status_code == 200 and f'action="/r/{shop.slug}/buy"' in page.text


def test_one_owners_accounts_sharing_a_public_id_still_lead_to_its_router(shop, live_server):
    """Test and live keys of one shop: the link finds the router whichever account it offers."""
    fedapay = next(a for a in shop.accounts if a.provider == "fedapay")
    fedapay.public_id = "pk_sandbox_shop"
    unused = PaymentAccount(owner_id=shop.owner_id, provider="fedapay", label="Live", environment="live",
                            credentials=json.dumps(CREDENTIALS["fedapay"]), public_id="pk_sandbox_shop")
    db.session.add(unused)
    db.session.commit()
    query = {"nasid": "hotspot1", "amount": "200", "profile_name": "1h", "pub_key": "pk_sandbox_shop"}
    page = requests.get(f"{live_server}/buy-mikhmon", params=query)
    assert page.status_code == 200 and f'action="/r/{shop.slug}/buy"' in page.text


def test_pages_that_show_a_ticket_are_never_cached(shop, live_server, provider_sandbox):
    order = paid_and_provisioned(live_server, shop, provider_sandbox)
    http = requests.Session()
    responses = {
        "order page": http.get(f"{live_server}/o/{order.code}"),
        "provider's return": http.post(f"{live_server}/o/{order.code}", data={"id": order.provider_ref}),
        "status fragment": http.get(f"{live_server}/o/{order.code}/status", headers={"HX-Request": "true"}),
        "retrieval form": http.get(f"{live_server}/retrieve"),
        "retrieved ticket": http.post(f"{live_server}/retrieve", data={"reference": order.code, "phone": PHONE}),
        "retrieval refused": http.post(f"{live_server}/retrieve", data={"reference": order.code, "phone": "22900000000"}),
        "unknown order": http.get(f"{live_server}/o/ABCDEFGHJK"),
    }
    assert order.ticket.username in responses["order page"].text
    assert order.ticket.username in responses["retrieved ticket"].text
    for name, response in responses.items():
        assert response.headers.get("Cache-Control") == "no-store", name
