"""An operator's trial (`flask --app sandbox trial`): an empty Kiosque with stand-in providers, router
and hotspot. An owner adds the router and an account by hand, as on a real server, and a buyer on
the hotspot pays, gets a ticket and is logged in through the router's login address, over real HTTP."""

import html
import re
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

import sandbox
from portal.extensions import db
from portal.models import Order, OrderStatus, Router
from portal.services import owners
from sandbox import trial
from tests.conftest import Browser, free_port, page_text, with_test_database

ROUTER_PASSWORD = "trial-R0uter"


@pytest.fixture
def trial_app(app_config):
    yield from with_test_database(sandbox.create_app(app_config))


@pytest.fixture
def served(trial_app):
    server = make_server("127.0.0.1", 0, trial_app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    router = trial.prepare(trial_app, base, free_port(), ROUTER_PASSWORD)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base, router
    trial_app.extensions["kiosque.provider_sandbox"].drain(timeout=5)
    server.shutdown()
    thread.join(5)
    router.stop()


def test_a_trial_sale_from_an_empty_kiosque(trial_app, served):
    base, sandbox_router = served
    owners.create_owner("essai@example.com", "essai-password")
    owner = Browser(trial_app.test_client())
    assert owner.login("essai@example.com", "essai-password").status_code == 302

    # The router, added by hand; its hotspot DNS name is read from it: the trial's own address.
    assert owner.post("/owner/routers/new", {
        "name": "Essai", "host": sandbox_router.host, "port": str(sandbox_router.port), "api_username": "admin",
        "api_password": ROUTER_PASSWORD, "hotspot_server": "all", "dns_name": "", "user_mode": "vc",
        "name_length": "6", "charset": "lower", "prefix": "", "currency": "XOF"}).status_code == 302
    router = db.session.scalar(db.select(Router))
    assert owner.post(f"/owner/routers/{router.id}/test").status_code == 200
    assert owner.post(f"/owner/routers/{router.id}/plans/import", {"profile": ["1h"]}).status_code == 302

    # The accounts page lists the trial keys; an account made with them is accepted and offered at once.
    accounts = page_text(owner.get("/owner/accounts/"))
    assert "Comptes d'essai (bac à sable)" in accounts and trial.TRIAL_KEYS["feexpay"]["token"] in accounts
    assert owner.post("/owner/accounts/new/feexpay", {
        "label": "FeexPay essai", "active": "y", "networks": ["mtn"], **trial.TRIAL_KEYS["feexpay"]}).status_code == 302
    db.session.expire_all()
    router = db.session.get(Router, router.id)
    assert router.dns_name == base.split("://", 1)[1] and [a.provider for a in router.accounts] == ["feexpay"]
    assert "Clés acceptées par FeexPay." in page_text(owner.post(f"/owner/accounts/{router.accounts[0].id}/check"))

    # A phone on the hotspot buys the plan and approves the push.
    phone = requests.Session()
    hotspot = phone.get(f"{base}/sandbox/hotspot/").text
    plans = phone.get(base + html.unescape(re.search(r'href="(/r/[^"]+)"', hotspot).group(1))).text
    form = {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', plans)}
    form.update(plan_id=router.plans[0].id, account_id=router.accounts[0].id, phone="2290197000000", network="mtn")
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', plans).group(1))
    assert phone.post(base + action, data=form).status_code == 200
    order = db.session.scalar(db.select(Order).order_by(Order.id.desc()))
    assert requests.post(f"{base}/sandbox/control/feexpay/{order.provider_ref}/approve", timeout=5).ok
    page = ""
    for _ in range(100):  # no webhook in a trial: the order page asks the stand-in provider
        page = html.unescape(phone.get(f"{base}/o/{order.code}").text)
        if "Votre ticket est prêt" in page or "Vous êtes connecté" in page:
            break
        time.sleep(0.1)
    db.session.expire_all()
    order = db.session.get(Order, order.id)
    assert order.status == OrderStatus.PROVISIONED, page
    assert "Vous êtes connecté" in page
    assert [s["user"] for s in sandbox_router.active()] == [order.ticket.username]
    # The router's login address (its DNS name) is served too, where login.html links lead.
    assert "Vous êtes connecté à Internet." in html.unescape(phone.get(f"http://{router.dns_name}/login").text)
