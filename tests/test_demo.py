from portal.sandbox.demo import EMAIL as DEMO_EMAIL
from portal.sandbox.demo import PLANS as DEMO_PLANS
from portal.sandbox.demo import seed as seed_demo
from portal.extensions import db
from portal.models import Order, Plan, Router
from portal.sandbox.routeros import SandboxRouter
from portal.services import owners, provisioning


def test_demo_seed_is_ready_to_sell_and_follows_the_sandbox_port(app):
    with SandboxRouter(password="first") as first:
        router = seed_demo(first.host, first.port, "first", hotspot_url="127.0.0.1:5000/sandbox/hotspot")
        assert router.identity == "Kiosque-Sandbox" and router.dns_name == "127.0.0.1:5000/sandbox/hotspot"
        assert sorted(a.provider for a in router.accounts) == ["cinetpay", "fedapay", "feexpay"]
        plan = db.session.scalar(db.select(Plan).where(Plan.label == DEMO_PLANS[0][0]))
        provisioning.sell_by_hand(router, plan)
        assert len(first.users()) == 1
    with SandboxRouter(password="second") as second:
        again = seed_demo(second.host, second.port, "second", hotspot_url="127.0.0.1:5000/sandbox/hotspot")
        assert again.id == router.id and again.port == second.port and again.api_password == "second"
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 1
    assert db.session.scalar(db.select(db.func.count(Plan.id))) == len(DEMO_PLANS)
    assert owners.find_owner(DEMO_EMAIL) is not None


def test_the_demo_path_from_the_hotspot_page_to_online(app):
    """What a newcomer clicks after `make run`, for each provider, over real HTTP."""
    import html
    import re
    import threading
    import time

    import requests
    from werkzeug.serving import make_server

    from portal.sandbox import demo

    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    stage = demo.stage(app, base)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for provider in ("fedapay", "cinetpay", "feexpay"):
            browser = requests.Session()
            hotspot = browser.get(f"{base}/sandbox/hotspot/").text
            plans_page = browser.get(base + html.unescape(re.search(r'href="(/r/[^"]+)"', hotspot).group(1))).text
            form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', plans_page))
            form = {k: html.unescape(v) for k, v in form.items()}
            account = next(a for a in stage.router.accounts if a.provider == provider)
            form.update(plan_id=stage.router.plans[0].id, account_id=account.id, phone="2290197000000", network="mtn")
            action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', plans_page).group(1))
            page = browser.post(base + action, data=form)
            if provider == "feexpay":  # the phone's prompt stands in for the USSD push
                prompt = re.findall(r'href="(/sandbox/feexpay/phone/[^"]+)"', browser.get(f"{base}/sandbox/feexpay/phone").text)[-1]
                page = browser.get(base + prompt)
            approve = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
            page = browser.post(requests.compat.urljoin(page.url, approve), data={"action": "approve"})
            if "transaction_id" in page.text:  # CinetPay returns the buyer with an auto-submitted form
                back = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', page.text, re.S)
                page = browser.post(html.unescape(back.group(1)),
                                    data=dict(re.findall(r'name="([^"]+)" value="([^"]*)"', back.group(2))))
            code = db.session.scalar(db.select(Order.code).order_by(Order.id.desc()))
            for _ in range(100):  # the order page polls until the ticket is there
                if "Vous êtes connecté" in html.unescape(page.text):
                    break
                time.sleep(0.1)
                page = browser.get(f"{base}/o/{code}")
            db.session.expire_all()
            order = db.session.scalar(db.select(Order).where(Order.code == code))
            assert "Vous êtes connecté" in html.unescape(page.text), (provider, order.status, order.ticket and order.ticket.login_result)
            assert "Vous êtes connecté à Internet" in html.unescape(browser.get(f"{base}/sandbox/hotspot/").text)
    finally:
        server.shutdown()
        stage.router_server.stop()
