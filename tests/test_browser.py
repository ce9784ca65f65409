"""The buyer's and the owner's paths in a real browser: Debian's chromium against the demo stage.

The app is served over real HTTP with the demo stage (sandbox router on a real TCP port, sandbox
providers mounted in the app), as `make run` serves it; the browser clicks through the sandbox
hotspot page, the plans, the providers' hosted pages and the order page, whose htmx polling (or,
without JavaScript, its meta refresh) brings the ticket. tests/test_demo.py drives the same path
with `requests`. Every step leaves a screenshot under test-artifacts/browser/<test>/. The browser
and the served app are tests/browser.py's fixtures.
"""

import logging
import re

import librouteros
import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Order, OrderStatus
from sandbox import demo
from tests.browser import BUYER, OWNER, Live, Shots

PHONE = "2290197000000"
ONLINE_WAIT_MS = 15_000  # the order page polls every second; the ticket comes a moment after the payment
TITLES = {"fedapay": "FedaPay", "cinetpay": "CinetPay", "feexpay": "FeexPay"}
# How each payment option reads under its wallets on the plans page.
OPTIONS = {"fedapay": "sur la page de paiement FedaPay", "cinetpay": "sur la page de paiement CinetPay",
           "feexpay": "validation sur votre téléphone"}


@pytest.fixture
def app_config(app_config):
    """The buyers' limits on, as in production (each test's app counts afresh)."""
    return {**app_config, "RATELIMIT_ENABLED": True}


# -- the buyer's steps --------------------------------------------------------------------------


def client_ip(page) -> str:
    """The IP the sandbox hotspot gave this browser, as its page shows it."""
    return re.search(r"10\.5\.50\.\d+", page.locator("p.muted").first.inner_text()).group(0)


def choose_and_pay(live: Live, page, shots: Shots, provider: str, router_name: str = "Démo", *,
                   phone: str = PHONE, network: str = "mtn") -> str:
    """From the sandbox hotspot page to the provider's page (or the phone prompt); the client's IP."""
    page.goto(live.url("/sandbox/hotspot/"))
    expect(page.locator("h1")).to_have_text("Bienvenue sur le WiFi")
    ip = client_ip(page)
    shots(page, "hotspot")
    page.get_by_role("link", name=f"Acheter un ticket · {router_name}").click()
    expect(page.locator("h1")).to_have_text("Acheter un ticket WiFi")
    page.locator("input[name=plan_id]").first.check()
    page.get_by_label(OPTIONS[provider]).check()
    page.get_by_label("Numéro Mobile Money").fill(phone)
    if provider == "feexpay":
        page.locator(f"input[name=network][value={network}]").check()
    shots(page, "plans")
    page.get_by_role("button", name="Payer").click()
    page.wait_for_load_state()
    return ip


def approve_on_the_phone(page, shots: Shots, number: str = PHONE, phone=None) -> None:
    """The push reaches the buyer's phone, played by the sandbox's prompt page: the buyer approves it.

    `phone`: that page, already opened (by the demo's link on the waiting page), else opened here.
    """
    if phone is None:
        phone = page.context.new_page()
        phone.goto(page.url.split("/o/")[0] + "/sandbox/feexpay/phone")
    phone.get_by_role("link", name=re.compile(number)).last.click()
    shots(phone, "phone-prompt")
    phone.get_by_role("button", name="Valider").click()
    expect(phone.locator("main")).to_contain_text("Paiement effectué.")
    shots(phone, "phone-approved")
    phone.close()
    page.bring_to_front()


def approve(page, shots: Shots, provider: str) -> None:
    """Approve the payment as the buyer would, and come back to the order page."""
    if provider == "feexpay":
        expect(page.locator("h1")).to_have_text("Confirmez sur votre téléphone")
        shots(page, "order-waiting-for-phone")
        with page.context.expect_page() as opened:  # the demo's waiting page links its stand-in phone
            page.get_by_role("link", name="Démo : ouvrir le téléphone simulé").click()
        approve_on_the_phone(page, shots, phone=opened.value)
        return
    expect(page.locator("h1")).to_have_text(f"Paiement {TITLES[provider]}")
    shots(page, "checkout")
    page.locator("button[value=approve]").click()  # CinetPay then posts the buyer back by script
    page.wait_for_url(re.compile(r"/o/\w+"))


def wait_online(page, shots: Shots) -> None:
    expect(page.locator("h1")).to_have_text("Vous êtes connecté !", timeout=ONLINE_WAIT_MS)
    shots(page, "online")


@pytest.mark.parametrize("provider", ["fedapay", "cinetpay", "feexpay"])
def test_buy_and_get_online(live, contexts, shots, provider):
    page = contexts(**BUYER).new_page()
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.headers.get("hx-request", "")) if r.url.endswith("/status") else None)
    ip = choose_and_pay(live, page, shots, provider)
    approve(page, shots, provider)
    wait_online(page, shots)
    if provider == "feexpay":  # the page waited for the phone: htmx's polling brought the ticket
        assert polls and set(polls) == {"true"}
    order = live.latest_order()
    assert order.provider == provider and order.status == OrderStatus.PROVISIONED
    assert page.locator(".code.big").inner_text() == order.ticket.username
    sessions = [s for s in live.stage.router_server.active() if s["address"] == ip]
    assert [s["user"] for s in sessions] == [order.ticket.username]
    page.goto(live.url("/sandbox/hotspot/"))
    expect(page.locator("h1")).to_have_text("Vous êtes connecté à Internet.")
    shots(page, "hotspot-online")


def test_get_the_code_back_from_the_payment_reference(live, contexts, shots):
    context = contexts(**BUYER)
    page = context.new_page()
    choose_and_pay(live, page, shots, "cinetpay")
    approve(page, shots, "cinetpay")
    wait_online(page, shots)
    page.close()
    order = live.latest_order()
    assert order.payer_reference and order.payer_phone == "+" + PHONE  # kept in E.164

    page = context.new_page()
    page.goto(live.url("/retrieve"))
    expect(page.locator("h1")).to_have_text("Récupérer mon code")
    shots(page, "retrieve")
    page.get_by_label("Référence du paiement ou numéro de commande").fill(order.payer_reference)
    page.get_by_label("Numéro de téléphone qui a payé").fill("2290196999999")  # not the payer's
    page.get_by_role("button", name="Retrouver mon code").click()
    expect(page.get_by_role("alert")).to_have_text("Aucun ticket ne correspond à cette référence et à ce numéro.")
    assert page.locator(".code").count() == 0
    shots(page, "retrieve-wrong-phone")
    page.get_by_label("Numéro de téléphone qui a payé").fill(PHONE)
    page.get_by_role("button", name="Retrouver mon code").click()
    expect(page.locator(".code.big")).to_have_text(order.ticket.username)
    shots(page, "retrieved")


def test_without_javascript_the_order_page_refreshes_to_the_ticket(live, contexts, shots):
    context = contexts(**BUYER, java_script_enabled=False)
    checkout = context.new_page()
    scripts: list[str] = []
    context.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    choose_and_pay(live, checkout, shots, "fedapay")
    expect(checkout.locator("h1")).to_have_text("Paiement FedaPay")
    order = live.latest_order()
    # The buyer's order page waits in another tab while they pay: no script runs there.
    waiting = context.new_page()
    loads: list[str] = []
    waiting.on("load", lambda p: loads.append(p.url))
    waiting.goto(live.url(f"/o/{order.code}"))
    expect(waiting.locator("h1")).to_have_text("Paiement en attente")
    assert 'http-equiv="refresh" content="2"' in waiting.content()
    shots(waiting, "order-pending")
    checkout.bring_to_front()
    shots(checkout, "checkout")
    checkout.locator("button[value=approve]").click()
    checkout.wait_for_url(re.compile(r"/o/\w+"))
    waiting.bring_to_front()
    wait_online(waiting, shots)
    assert len(loads) >= 2 and all(url == live.url(f"/o/{order.code}") for url in loads)  # reloaded by itself
    assert waiting.locator(".code.big").inner_text() == live.latest_order().ticket.username
    assert scripts == []  # nothing ran: the meta refresh alone brought the ticket


def test_a_double_tap_on_payer_lands_on_the_payment_page(live, contexts, shots):
    """The provider takes a while: the second tap arrives while the first is still opening the checkout."""
    live.providers.set_knobs(api_latency=2.0)
    page = contexts(**BUYER).new_page()
    buys: list[str] = []
    page.on("request", lambda r: buys.append(r.method) if r.url.endswith("/buy") else None)
    page.goto(live.url("/sandbox/hotspot/"))
    page.get_by_role("link", name="Acheter un ticket · Démo").click()
    page.locator("input[name=plan_id]").first.check()
    page.get_by_label(OPTIONS["fedapay"]).check()
    shots(page, "plans")
    pay = page.get_by_role("button", name="Payer")
    pay.scroll_into_view_if_needed()
    box = pay.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)  # a finger's taps: nothing waits for the navigation they start
    for _ in range(100):  # the second tap once the first one's order waits for its checkout
        if live.latest_order() is not None:
            break
        page.wait_for_timeout(50)
    assert live.latest_order().status == OrderStatus.CREATED
    page.mouse.click(x, y)
    expect(page.locator("h1")).to_have_text("Paiement FedaPay", timeout=ONLINE_WAIT_MS)
    shots(page, "checkout")
    assert buys == ["POST", "POST"]
    order = live.latest_order()
    assert db.session.scalar(db.select(db.func.count(Order.id))) == 1 and len(live.providers.transactions("fedapay")) == 1
    page.locator("button[value=approve]").click()
    wait_online(page, shots)
    assert live.latest_order().id == order.id


def end_sessions(router_server) -> None:
    """The router ends every hotspot session, as when a client stays away past its idle timeout."""
    chatty = logging.getLogger("librouteros")
    chatty.disabled = True  # it logs every word at DEBUG: the router's password, the sessions' vouchers
    try:
        api = librouteros.connect(router_server.host, router_server.username, router_server.password,
                                  port=router_server.port, timeout=5)
        try:
            active = api.path("ip", "hotspot", "active")
            ids = [row[".id"] for row in active]
            if ids:
                active.remove(*ids)
        finally:
            api.close()
    finally:
        chatty.disabled = False


def test_retrieval_at_a_busy_hotspot_then_online_again(app, live, contexts, shots):
    """A buyer back later mistypes the phone until the limit, on the retrieval page itself; another
    phone of the hotspot still gets the code back, and "Se connecter" puts it online."""
    app.config["RETRIEVE_CLIENT_RATE_LIMIT"] = "2 per minute"
    first = contexts(**BUYER).new_page()
    choose_and_pay(live, first, shots, "cinetpay")
    approve(first, shots, "cinetpay")
    wait_online(first, shots)
    order = live.latest_order()
    end_sessions(live.stage.router_server)

    first.goto(live.url("/sandbox/hotspot/"))
    expect(first.locator("h1")).to_have_text("Bienvenue sur le WiFi")
    first.get_by_role("link", name="Récupérer mon code").click()
    expect(first.locator("h1")).to_have_text("Récupérer mon code")
    for typo in ("2290196999999", "2290196999998"):
        first.get_by_label("Référence du paiement ou numéro de commande").fill(order.payer_reference)
        first.get_by_label("Numéro de téléphone qui a payé").fill(typo)
        first.get_by_role("button", name="Retrouver mon code").click()
        expect(first.get_by_role("alert")).to_have_text("Aucun ticket ne correspond à cette référence et à ce numéro.")
    first.get_by_label("Numéro de téléphone qui a payé").fill(PHONE)
    first.get_by_role("button", name="Retrouver mon code").click()
    expect(first.get_by_role("alert")).to_have_text(
        "Trop d'essais en peu de temps pour retrouver un code. Patientez une minute puis réessayez : "
        "ce que vous avez saisi est gardé.")
    expect(first.locator("h1")).to_have_text("Récupérer mon code")
    expect(first.get_by_label("Référence du paiement ou numéro de commande")).to_have_value(order.payer_reference)
    expect(first.get_by_label("Numéro de téléphone qui a payé")).to_have_value(PHONE)
    links = first.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not [href for href in links if href == "/" or href.startswith("/owner")], links
    assert first.locator(".code").count() == 0
    shots(first, "retrieve-over-the-limit")

    second = contexts(**BUYER).new_page()  # another phone on the hotspot: its own limit
    second.goto(live.url("/sandbox/hotspot/"))
    ip = client_ip(second)
    second.get_by_role("link", name="Récupérer mon code").click()
    second.get_by_label("Référence du paiement ou numéro de commande").fill(order.payer_reference)
    second.get_by_label("Numéro de téléphone qui a payé").fill(PHONE)
    second.get_by_role("button", name="Retrouver mon code").click()
    expect(second.locator(".code.big")).to_have_text(order.ticket.username)
    shots(second, "retrieved")
    second.get_by_role("link", name="Se connecter").click()  # the router's page takes the code from the link
    expect(second.locator("h1")).to_have_text("Vous êtes connecté à Internet.")
    assert "#" not in second.url  # the page cleared the fragment
    shots(second, "online-again")
    assert [s["user"] for s in live.stage.router_server.active() if s["address"] == ip] == [order.ticket.username]


def test_without_javascript_change_the_network_cancel_and_insufficient_funds(live, contexts, shots):
    """The page waiting for the phone, its buttons and the network choice, all without a script."""
    context = contexts(**BUYER, java_script_enabled=False)
    page = context.new_page()
    page.goto(live.url("/sandbox/hotspot/"))
    page.get_by_role("link", name="Acheter un ticket · Démo").click()
    networks = page.locator("fieldset.networks")
    page.get_by_label(OPTIONS["fedapay"]).check()
    expect(networks).to_be_hidden()  # only the option that charges a phone asks for the network
    page.get_by_label(OPTIONS["feexpay"]).check()
    expect(networks).to_be_visible()
    assert page.locator("input[name=network]:checked").count() == 0
    page.locator("input[name=plan_id]").first.check()
    page.get_by_label("Numéro Mobile Money").fill(PHONE)
    page.get_by_label("MTN MoMo", exact=True).check()
    shots(page, "plans-network")
    page.get_by_role("button", name="Payer").click()
    expect(page.locator("h1")).to_have_text("Confirmez sur votre téléphone")
    expect(page.locator("main")).to_contain_text("Rien ne s'affiche ?")
    shots(page, "waiting-for-the-phone")

    page.get_by_role("link", name="Changer de numéro ou de réseau").click()
    expect(page.locator("h1")).to_have_text("Acheter un ticket WiFi")
    expect(page.get_by_label("Numéro Mobile Money")).to_have_value("+229 01 97 00 00 00")  # as it reads
    expect(page.get_by_label("MTN MoMo", exact=True)).to_be_checked()
    page.get_by_label("Moov Money", exact=True).check()
    shots(page, "changed-network")
    page.get_by_role("button", name="Payer").click()
    expect(page.locator("main")).to_contain_text("(Moov Money)")
    page.get_by_role("button", name="Annuler la commande").click()
    expect(page.locator("h1")).to_have_text("Commande annulée")
    shots(page, "cancelled")

    page.get_by_role("link", name="Réessayer").click()
    expect(page.get_by_label("Moov Money", exact=True)).to_be_checked()
    page.get_by_role("button", name="Payer").click()
    expect(page.locator("h1")).to_have_text("Confirmez sur votre téléphone")
    live.providers.decline("feexpay", live.latest_order().provider_ref)  # the operator: not enough money
    expect(page.locator("h1")).to_have_text("Solde insuffisant", timeout=ONLINE_WAIT_MS)  # the meta refresh
    shots(page, "insufficient-funds")
    statuses = db.session.scalars(db.select(Order.status).order_by(Order.id)).all()
    assert statuses == [OrderStatus.PENDING, OrderStatus.FAILED, OrderStatus.FAILED]


def test_owner_adds_a_router_imports_plans_and_sees_the_sale(live, contexts, shots):
    page = contexts(**OWNER).new_page()
    page.goto(live.url("/owner/login"))
    page.get_by_label("E-mail").fill(demo.EMAIL)
    page.get_by_label("Mot de passe").fill(demo.PASSWORD)
    shots(page, "login")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("h1")).to_have_text("Ventes")
    shots(page, "dashboard-before")

    # A new router, pointed at the stage's sandbox router.
    router = live.stage.router_server
    page.get_by_role("navigation").get_by_role("link", name="Routeurs").click()
    page.get_by_role("link", name="Ajouter un routeur").click()
    page.get_by_label("Nom", exact=True).fill("Maquis Étoile")
    page.get_by_label("Adresse du routeur (IP ou nom)").fill(router.host)
    page.get_by_label("Port de l'API").fill(str(router.port))
    page.get_by_label("Utilisateur de l'API").fill("admin")
    page.get_by_label("Mot de passe de l'API").fill(router.password)
    shots(page, "router-form")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("h1")).to_have_text("Maquis Étoile")
    page.get_by_role("navigation").get_by_role("link", name="Routeurs").click()
    shots(page, "routers")
    page.get_by_role("link", name="Maquis Étoile").click()
    expect(page.locator("h1")).to_have_text("Maquis Étoile")
    router_page = page.url

    # The connection test is an htmx fragment: the page stays, the facts appear.
    with page.expect_response(lambda r: r.url.endswith("/test")) as tested:
        page.get_by_role("button", name="Tester la connexion").click()
    assert tested.value.request.headers.get("hx-request") == "true"
    expect(page.locator("#connection")).to_contain_text("Connexion réussie.")
    expect(page.locator("#connection")).to_contain_text("Kiosque-Sandbox")
    assert page.url == router_page
    shots(page, "connection-tested")

    # Plans from the router's Mikhmon profiles.
    page.get_by_role("link", name="Importer depuis les profils Mikhmon").click()
    proposals = page.locator("input[name=profile]:checked")
    expect(proposals).to_have_count(3)  # "illimite" has no validity: left for the owner to choose
    proposed = proposals.evaluate_all("boxes => boxes.map(b => b.value)")
    shots(page, "import-profiles")
    page.get_by_role("button", name="Créer les forfaits choisis").click()
    plans = page.locator("section", has_text="Forfaits").first.locator("tbody tr")
    expect(plans).to_have_count(len(proposed))
    assert sorted(plans.locator("td:nth-child(3)").all_inner_texts()) == sorted(proposed)

    # Offer FedaPay to this router's buyers.
    offer = page.locator("section", has_text="Paiement en ligne")
    offer.locator("label", has_text="FedaPay").locator("input").check()
    offer.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("section", has_text="Paiement en ligne").locator("label", has_text="FedaPay")
           .locator("input")).to_be_checked()
    shots(page, "router-ready")

    # A buyer on this router's hotspot pays with FedaPay.
    buyer = contexts(**BUYER).new_page()
    choose_and_pay(live, buyer, shots, "fedapay", router_name="Maquis Étoile")
    approve(buyer, shots, "fedapay")
    wait_online(buyer, shots)
    order = live.latest_order()
    assert order.router.name == "Maquis Étoile" and order.status == OrderStatus.PROVISIONED

    # And a cash sale at the counter.
    page.reload()
    sale = page.locator("section", has_text="Vendre un ticket à la main")
    sale.locator("select[name=plan_id]").select_option(index=1)
    cash_plan = sale.locator("select[name=plan_id] option:checked").inner_text()
    sale.get_by_role("button", name="Créer le ticket").click()
    expect(page.locator("#sale")).to_contain_text("Ticket créé sur le routeur")
    cash_code = page.locator("#sale .code").inner_text()
    assert any(u["name"] == cash_code for u in router.users())
    shots(page, "cash-sale")

    # Both on the dashboard; the online order in the list.
    page.get_by_role("navigation").get_by_role("link", name="Ventes").click()
    today = page.locator(".period").first
    cash_price = int(re.sub(r"\D", "", cash_plan.split("·")[-1]))
    assert int(re.sub(r"\D", "", today.locator(".big-figure").inner_text())) == order.amount + cash_price
    expect(today).to_contain_text("2 tickets")
    expect(page.locator("#breakdown")).to_contain_text("Maquis Étoile")  # today's, in detail
    shots(page, "dashboard-after")
    page.get_by_role("navigation").get_by_role("link", name="Commandes").click()
    row = page.locator("tbody tr", has_text=order.code)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("FedaPay")
    expect(row).to_contain_text("Maquis Étoile")
    shots(page, "orders")


# -- FeexPay's networks as they really behave ---------------------------------------------------------


def enable_networks(live: Live, *networks: str, country: str = "bj") -> None:
    """The owner enables these networks on the demo's FeexPay account, for a hotspot in `country`
    (buyers are offered the networks of the hotspot's country)."""
    router = live.stage.router
    account = next(a for a in router.accounts if a.provider == "feexpay")
    account.settings = {"networks": list(networks)}
    router.country = country
    db.session.commit()


def test_a_payment_page_network_at_360px(live, contexts, shots):
    enable_networks(live, "mtn", "wave_ci", country="ci")
    page = contexts(**BUYER).new_page()
    choose_and_pay(live, page, shots, "feexpay", phone="07 07 00 00 00", network="wave_ci")
    expect(page.locator("h1")).to_have_text("Paiement mobile")  # Wave's page, not a prompt on the phone
    expect(page.locator("main")).to_contain_text("WAVE CI")
    shots(page, "wave-page")
    page.get_by_role("button", name="Payer").click()
    page.wait_for_url(re.compile(r"/o/\w+$"))
    wait_online(page, shots)
    order = live.latest_order()
    assert (order.network, order.payer_phone, order.status) == ("wave_ci", "+2250707000000", OrderStatus.PROVISIONED)


def test_a_payment_code_network_at_360px(live, contexts, shots):
    enable_networks(live, "mtn", "orange_sn", country="sn")
    page = contexts(**BUYER).new_page()
    choose_and_pay(live, page, shots, "feexpay", phone="77 123 45 67", network="orange_sn")
    code = page.get_by_label("Code de paiement")
    expect(code).to_be_visible()
    expect(page.locator("#otp-error")).to_contain_text("#144#391#")  # how to get it, next to the field
    assert page.locator("input[name=network]:checked").input_value() == "orange_sn"
    assert page.get_by_label("Numéro Mobile Money").input_value() == "77 123 45 67"
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the phone
    shots(page, "code-asked")
    expect(page.locator("input[name=plan_id]").first).to_be_checked()  # the form comes back as the buyer left it
    expect(page.get_by_label(OPTIONS["feexpay"])).to_be_checked()
    code.fill("123456")
    page.get_by_role("button", name="Payer").click()
    expect(page.locator("h1")).to_have_text("Confirmez sur votre téléphone")
    shots(page, "order-waiting-for-phone")
    approve_on_the_phone(page, shots, "221771234567")
    wait_online(page, shots)
    assert live.latest_order().network == "orange_sn"


def test_a_lost_answer_revived_at_360px(live, app, contexts, shots):
    providers = app.extensions["kiosque.provider_sandbox"]
    providers.set_knobs(outage_after_create=True)
    page = contexts(**BUYER).new_page()
    choose_and_pay(live, page, shots, "feexpay")
    providers.set_knobs(outage_after_create=False)
    expect(page.locator("h1")).to_have_text("Demande envoyée ?")
    expect(page.locator("#order")).to_contain_text("nous ne savons pas encore")
    expect(page.locator("#order")).not_to_contain_text("Rien n'a été débité")
    shots(page, "order-unknown")
    assert live.latest_order().status == OrderStatus.UNKNOWN
    approve_on_the_phone(page, shots)  # the prompt had reached the phone after all
    wait_online(page, shots)
    order = live.latest_order()
    assert order.status == OrderStatus.PROVISIONED and order.provider_ref
