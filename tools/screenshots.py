"""Screenshots of Kiosque's main pages, in French, at 360 px and 1280 px, into docs/screenshots/.

    .venv/bin/python tools/screenshots.py

Stages the demo as the benchmarks do (the app on a loopback port, the sandbox router and the
sandbox providers, a fresh SQLite file), makes a few sales through Debian's chromium (FedaPay,
CinetPay and FeexPay purchases, a declined one, one left pending, cash sales on earlier days
for the chart), then takes full-page screenshots: docs/screenshots/<page>-<width>.png.
"""

import logging
import re
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from bench.staging import staged_kiosque  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import Order, OrderStatus, utcnow  # noqa: E402
from portal.services import provisioning  # noqa: E402
from sandbox import demo  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
WIDTHS = {360: 740, 1280: 800}  # width -> viewport height
PHONE = "2290197000000"
# How each payment option reads under its wallets on the plans page.
OPTIONS = {"fedapay": "sur la page de paiement FedaPay", "cinetpay": "sur la page de paiement CinetPay",
           "feexpay": "validation sur votre téléphone"}
CASH_DAYS_AGO = (1, 2, 2, 4, 6, 9, 13, 20)  # cash sales on earlier days, so the chart has bars


def latest_order() -> Order:
    db.session.expire_all()  # the server's threads wrote it
    return db.session.scalar(db.select(Order).order_by(Order.id.desc()))


def start_purchase(page, base: str, provider: str, plan_index: int = 0) -> None:
    """Hotspot page -> plans -> Payer: leaves the page on the provider's checkout (or the order page)."""
    page.goto(f"{base}/sandbox/hotspot/")
    page.get_by_role("link", name=re.compile("Acheter un ticket")).first.click()
    page.locator("input[name=plan_id]").nth(plan_index).check()
    page.get_by_label(OPTIONS[provider]).check()
    page.get_by_label("Numéro Mobile Money").fill(PHONE)
    if provider == "feexpay":
        page.locator("input[name=network][value=mtn]").check()
    page.get_by_role("button", name="Payer").click()
    page.wait_for_load_state()


def settle(page, base: str, provider: str, action: str = "approve") -> None:
    """Approve (or decline) on the provider's page or the phone prompt, then wait for the final order page."""
    if provider == "feexpay":
        order_url = page.url
        page.goto(f"{base}/sandbox/feexpay/phone")
        page.get_by_role("link", name=re.compile(PHONE)).last.click()
        page.locator(f"button[value={action}]").click()
        page.goto(order_url)
    else:
        page.locator(f"button[value={action}]").click()
        page.wait_for_url(re.compile(r"/o/\w+"))
    final = "Vous êtes connecté !" if action == "approve" else "Solde insuffisant"  # the sandbox declines for the balance
    expect(page.locator("h1")).to_have_text(final, timeout=15_000)


def make_sales(browser, base: str, stage: demo.Stage) -> dict[str, str]:
    """A few orders in every state the pages show; the order codes by what they illustrate."""
    codes = {}
    for provider, plan_index in (("fedapay", 0), ("cinetpay", 1), ("feexpay", 0)):
        context = browser.new_context(viewport={"width": 360, "height": 740}, locale="fr-FR")
        page = context.new_page()
        start_purchase(page, base, provider, plan_index)
        settle(page, base, provider)
        codes.setdefault("ticket", latest_order().code)
        context.close()
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="fr-FR")
    page = context.new_page()
    start_purchase(page, base, "cinetpay", 2)
    settle(page, base, "cinetpay", "decline")
    start_purchase(page, base, "fedapay", 1)  # left on the checkout: stays pending
    codes["pending"] = latest_order().code
    context.close()
    for days_ago in CASH_DAYS_AGO:
        plan = stage.router.plans[days_ago % len(stage.router.plans)]
        ticket = provisioning.sell_by_hand(stage.router, plan)
        ticket.created_on_router_at = utcnow() - timedelta(days=days_ago)
    db.session.commit()
    order = db.session.scalar(db.select(Order).where(Order.code == codes["ticket"]))
    assert order.status == OrderStatus.PROVISIONED and order.ticket is not None
    codes["reference"] = order.payer_reference
    codes["order_id"] = str(order.id)
    return codes


def shoot(page, name: str, width: int) -> Path:
    path = OUT / f"{name}-{width}.png"
    page.screenshot(path=path, full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth") - width
    if overflow > 0:  # the page scrolls sideways: worth a look
        print(f"warning: {path.name} is {overflow} px wider than the {width} px window", file=sys.stderr)
    return path


def buyer_pages(browser, base: str, codes: dict[str, str], width: int) -> list[Path]:
    context = browser.new_context(viewport={"width": width, "height": WIDTHS[width]}, locale="fr-FR")
    page = context.new_page()
    shots = []
    page.goto(f"{base}/sandbox/hotspot/")
    shots.append(shoot(page, "hotspot", width))
    page.get_by_role("link", name=re.compile("Acheter un ticket")).first.click()
    expect(page.locator("h1")).to_have_text("Acheter un ticket WiFi")
    shots.append(shoot(page, "plans", width))
    page.goto(f"{base}/o/{codes['pending']}")
    expect(page.locator("h1")).to_have_text("Paiement en attente")
    shots.append(shoot(page, "order-pending", width))
    page.goto(f"{base}/o/{codes['ticket']}")
    expect(page.locator("h1")).to_have_text("Vous êtes connecté !")
    shots.append(shoot(page, "ticket", width))
    page.goto(f"{base}/retrieve")
    shots.append(shoot(page, "retrieve", width))
    page.get_by_label("Référence du paiement ou numéro de commande").fill(codes["reference"])
    page.get_by_label("Numéro de téléphone qui a payé").fill(PHONE)
    page.get_by_role("button", name="Retrouver mon code").click()
    expect(page.locator(".code.big")).to_be_visible()
    shots.append(shoot(page, "retrieve-code", width))
    context.close()
    return shots


def owner_pages(browser, base: str, stage: demo.Stage, codes: dict[str, str], width: int) -> list[Path]:
    context = browser.new_context(viewport={"width": width, "height": WIDTHS[width]}, locale="fr-FR")
    page = context.new_page()
    shots = []
    page.goto(f"{base}/owner/login")
    shots.append(shoot(page, "owner-login", width))
    page.get_by_label("E-mail").fill(demo.EMAIL)
    page.get_by_label("Mot de passe").fill(demo.PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("h1")).to_have_text("Ventes")
    router_id, plan_id = stage.router.id, stage.router.plans[0].id
    for name, path in (
        ("dashboard", "/owner/"),
        ("orders", "/owner/orders/"),
        ("order", f"/owner/orders/{codes['order_id']}"),
        ("routers", "/owner/routers/"),
        ("router", f"/owner/routers/{router_id}"),
        ("router-form", f"/owner/routers/{router_id}/edit"),
        ("plan-form", f"/owner/plans/{plan_id}/edit"),
        ("plans-import", f"/owner/routers/{router_id}/plans/import"),
        ("router-delete", f"/owner/routers/{router_id}/delete"),
        ("accounts", "/owner/accounts/"),
        ("kit", f"/owner/routers/{router_id}/kit"),
    ):
        response = page.goto(base + path)
        assert response.ok, (path, response.status)
        if name == "router":  # with the connection tested and a cash sale, as the owner sees them
            page.get_by_role("button", name="Tester la connexion").click()
            expect(page.locator("#connection")).to_contain_text("Connexion réussie.")
            page.get_by_role("button", name="Créer le ticket").click()
            expect(page.locator("#sale")).to_contain_text("Ticket créé sur le routeur")
        shots.append(shoot(page, name, width))
    context.close()
    return shots


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with staged_kiosque() as (app, base, stage), sync_playwright() as playwright:
        logging.getLogger("portal").setLevel(logging.WARNING)  # one line per ticket buries the list
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            codes = make_sales(browser, base, stage)
            shots = []
            for width in WIDTHS:
                shots += buyer_pages(browser, base, codes, width)
                shots += owner_pages(browser, base, stage, codes, width)
        finally:
            browser.close()
    for path in shots:
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
