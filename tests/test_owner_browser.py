"""The owner's pages in a real browser, at a phone's 360 px and a desk's 1280 px, in French: every
page checked by axe-core, tables read as cards on the phone, deletes confirmed with and without
JavaScript, the sales chart readable without hovering.

axe-core comes from the npm registry as a development package (package.json): the test injects it
into the browser from node_modules; Kiosque never serves it.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Order, OrderStatus, Router
from portal.services import owners
from sandbox import demo
from tests.browser import Live
from tests.conftest import CLIENT_IP, CLIENT_MAC, Buyer, latest_order, wait_for

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {360: 740, 1280: 800}
RUN_AXE = """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations.map(
    v => `${v.id}: ${v.help} -> ${v.nodes.map(n => n.target.join(" ")).join(" | ")}`)"""


def owner_context(contexts, width: int, **options):
    assert AXE.exists(), "axe-core is missing: run `npm ci` (make setup does)"
    context = contexts(viewport={"width": width, "height": WIDTHS[width]}, locale="fr-FR", **options)
    context.add_init_script(path=str(AXE))  # by the browser itself, into every page: never served by Kiosque
    return context


def sign_in(page, live: Live) -> None:
    page.goto(live.url("/owner/login"))
    page.get_by_label("E-mail").fill(demo.EMAIL)
    page.get_by_label("Mot de passe").fill(demo.PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("h1")).to_have_text("Ventes")


def violations(page) -> list[str]:
    return page.evaluate(RUN_AXE)


@pytest.fixture
def sales(app, live: Live) -> dict:
    """The demo shop with a sale paid online and an order left pending."""
    router = live.stage.router
    providers = app.extensions["kiosque.provider_sandbox"]
    buyer = Buyer(live.base, router)
    live.stage.router_server.add_host(CLIENT_IP, CLIENT_MAC)
    buyer.buy("fedapay")
    paid = latest_order()
    providers.approve("fedapay", paid.provider_ref)
    wait_for(lambda: db.session.get(Order, paid.id).status == OrderStatus.PROVISIONED)
    buyer.buy("cinetpay", "1 jour")
    return {"router": router, "paid": db.session.get(Order, paid.id), "pending": latest_order()}


# Owner routes that answer something else than a page: a file, or a fragment of the router form;
# and the email confirmation link, whose page (an invalid link) is checked before signing in.
NOT_PAGES = {"owner.sales.export", "owner.settings.export", "owner.kit.login_page", "owner.routers.sample",
             "owner.settings.confirm_email"}


def every_owner_page(app, sales: dict) -> list[str]:
    """The path of every page an owner can open (GET), with the demo's ids."""
    router = sales["router"]
    ids = {"router_id": router.id, "plan_id": router.plans[0].id, "order_id": sales["paid"].id,
           "account_id": router.accounts[0].id, "token": owners.reset_token(router.owner)}
    paths = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("owner.") or "GET" not in rule.methods or rule.endpoint in NOT_PAGES:
            continue
        values = [{"provider": name} for name in ("fedapay", "cinetpay", "feexpay")] if "provider" in rule.arguments \
            else [{}]
        paths += [rule.build({**{k: v for k, v in ids.items() if k in rule.arguments}, **extra},
                             append_unknown=False)[1] for extra in values]
    return sorted(paths)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_owner_page_passes_axe(app, live, contexts, sales, width):
    page = owner_context(contexts, width).new_page()
    found = {}
    for path in ("/owner/login", "/owner/password/forgot", "/owner/password/reset/not-a-token",
                 "/owner/settings/email/confirm/not-a-token"):
        page.goto(live.url(path))
        found[path] = violations(page)
    sign_in(page, live)
    paths = every_owner_page(app, sales)
    assert len(paths) >= 20
    for path in paths:
        response = page.goto(live.url(path))
        assert response.ok, (path, response.status)
        found[path] = violations(page)
    # Pages that a click brings: the connection tested, a cash sale (htmx), a script generated.
    router_id = sales["router"].id
    page.goto(live.url(f"/owner/routers/{router_id}"))
    page.get_by_role("button", name="Tester la connexion").click()
    expect(page.locator("#connection")).to_contain_text("Connexion réussie.")
    page.get_by_role("button", name="Créer le ticket").click()
    expect(page.locator("#sale")).to_contain_text("Ticket créé sur le routeur")
    found["router page, tested, cash sale"] = violations(page)
    page.goto(live.url(f"/owner/routers/{router_id}/kit"))
    page.get_by_role("button", name="Générer le script").click()
    expect(page.locator("#script")).to_be_visible()
    found["kit with its script"] = violations(page)
    page.goto(live.url("/owner/routers/new"))
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator(".has-error").first).to_be_visible()
    found["router form with errors"] = violations(page)
    bad = [f"{path}: {violation}" for path, found_there in found.items() for violation in found_there]
    assert not bad, "\n".join(bad)


def inside_the_window(locator, width: int = 360) -> bool:
    """Shown in full without scrolling sideways: visible, and its box within the window's width."""
    box = locator.bounding_box()
    return locator.is_visible() and box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


def test_on_a_phone_rows_are_cards_with_nothing_hidden(live, contexts, sales):
    page = owner_context(contexts, 360).new_page()
    sign_in(page, live)
    paid = sales["paid"]

    page.goto(live.url("/owner/orders/"))
    card = page.locator("tbody tr", has_text=paid.code)
    cells = card.locator("td")
    assert cells.nth(0).inner_text() == "ticket livré"  # the status first, then the amount beside it
    assert cells.nth(1).inner_text() == "200\u00a0FCFA"
    assert all(inside_the_window(cells.nth(i)) for i in range(cells.count()))
    assert cells.nth(5).evaluate("td => getComputedStyle(td, '::before').content") == '"Paiement"'  # its column's name
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    card.scroll_into_view_if_needed()
    box = card.bounding_box()
    page.mouse.click(box["x"] + box["width"] - 10, box["y"] + box["height"] - 6)  # anywhere on the card
    expect(page.locator("h1")).to_have_text(f"Commande {paid.code}")

    page.goto(live.url(f"/owner/routers/{sales['router'].id}"))
    for text in ("Modifier", "Créé", "Limites"):
        assert all(inside_the_window(found) for found in page.get_by_text(text, exact=False).all()), text
    assert page.locator("table.cards tbody tr").first.evaluate("row => getComputedStyle(row).display") == "grid"
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    page.goto(live.url(f"/owner/routers/{sales['router'].id}/plans/import"))
    validity = page.locator("tbody tr", has_text="1w").locator('td[data-label="Validité"]')
    assert inside_the_window(validity) and "1w" in validity.inner_text()
    assert validity.evaluate("td => getComputedStyle(td, '::before').content") == '"Validité"'  # its column's name
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_the_sales_chart_reads_on_a_phone_without_hovering(live, contexts, sales):
    page = owner_context(contexts, 360).new_page()
    sign_in(page, live)
    labels = page.locator("svg.chart text")
    assert labels.count() == 5  # a date a week, the last one today's
    sizes = labels.evaluate_all("texts => texts.map(t => t.getBoundingClientRect().height)")
    assert min(sizes) >= 12, sizes  # was about 7 px: the whole drawing shrank with the page
    assert all(inside_the_window(labels.nth(i)) for i in range(labels.count()))
    page.get_by_text("Chiffres par jour").click()  # a tap, never a hover
    today = page.locator(".chart-figures tbody tr").first
    expect(today).to_contain_text("200\u00a0FCFA")
    expect(today.locator("td").nth(2)).to_have_text("1")
    # The periods: three lines, one in detail, the others one tap away.
    expect(page.locator("#breakdown h2")).to_have_text("Détail : aujourd'hui")
    page.get_by_role("link", name=re.compile("30 derniers jours")).click()
    expect(page.locator("#breakdown h2")).to_have_text("Détail : 30 derniers jours")
    assert page.evaluate("document.documentElement.scrollHeight") < 1600


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_deleting_asks_first(live, contexts, sales, javascript):
    page = owner_context(contexts, 360, java_script_enabled=javascript).new_page()
    sign_in(page, live)
    extra = Router(owner=sales["router"].owner, name="Ancien", host="192.0.2.10", api_username="a", api_password="p")
    db.session.add(extra)
    db.session.commit()
    extra_id = extra.id
    still_there = lambda: db.session.scalar(db.select(Router.id).where(Router.id == extra_id)) is not None  # noqa: E731
    asked, answers = [], [False, True, True]  # the browser's dialogs, and what the owner answers in turn
    page.on("dialog", lambda dialog: (asked.append(dialog.message),
                                      dialog.accept() if answers.pop(0) else dialog.dismiss()))
    page.goto(live.url(f"/owner/routers/{extra_id}"))
    page.get_by_role("button", name="Supprimer ce routeur").click()
    if javascript:  # the browser asked, the owner said no: nothing was sent
        expect(page.locator("h1")).to_have_text("Ancien")
        assert asked == ["Supprimer le routeur Ancien ?"]
    else:  # a page asks, and "Annuler" goes back
        expect(page.locator("h1")).to_have_text("Supprimer le routeur Ancien ?")
        page.get_by_role("link", name="Annuler").click()
        expect(page.locator("h1")).to_have_text("Ancien")
    assert still_there()
    page.get_by_role("button", name="Supprimer ce routeur").click()
    if not javascript:
        page.get_by_role("button", name="Oui, supprimer").click()
    expect(page.locator("h1")).to_have_text("Vos routeurs")
    assert not still_there()
    # A router that sold online cannot go: said on the confirmation page, whichever way it is reached.
    page.goto(live.url(f"/owner/routers/{sales['router'].id}"))
    page.get_by_role("button", name="Supprimer ce routeur").click()
    expect(page.get_by_role("alert")).to_contain_text("Ce routeur a des ventes en ligne")
    assert db.session.scalar(db.select(Router.id).where(Router.id == sales["router"].id)) is not None
    assert len(asked) == (3 if javascript else 0)


def test_the_router_page_leads_to_the_kit_and_the_demo_router_saves_as_it_is(live, contexts, sales):
    page = owner_context(contexts, 360).new_page()
    sign_in(page, live)
    router = sales["router"]
    page.goto(live.url(f"/owner/routers/{router.id}"))
    install = page.get_by_role("link", name="Installer Kiosque")
    assert install.get_attribute("class") == "button" and inside_the_window(install)
    page.goto(live.url(f"/owner/routers/{router.id}/edit"))
    page.get_by_role("button", name="Enregistrer").click()  # the demo's seeded values pass the form's checks
    expect(page.locator("h1")).to_have_text(router.name)
