import re
import threading
import time

from portal.extensions import db
from portal.models import Order, Plan, Router
from portal.services import owners, provisioning
from sandbox import demo, point_adapters_at
from sandbox.providers import ProviderSandbox
from sandbox.routeros import SandboxRouter
from tests.conftest import Buyer, latest_order


def test_seeded_shop_is_ready_to_sell_and_follows_the_sandbox_port(app):
    with SandboxRouter(password="first") as first:
        router = demo.seed_shop(first.host, first.port, "first", dns_name="127.0.0.1:5000")
        assert router.identity == "Kiosque-Sandbox" and router.dns_name == "127.0.0.1:5000"
        assert sorted(a.provider for a in router.accounts) == ["cinetpay", "fedapay", "feexpay"]
        plan = db.session.scalar(db.select(Plan).where(Plan.label == demo.PLANS[0][0]))
        provisioning.sell_by_hand(router, plan)
        assert len(first.users()) == 1
    with SandboxRouter(password="second") as second:
        again = demo.seed_shop(second.host, second.port, "second", dns_name="127.0.0.1:5000")
        assert again.id == router.id and again.port == second.port and again.api_password == "second"
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 1
    assert db.session.scalar(db.select(db.func.count(Plan.id))) == len(demo.PLANS)
    assert owners.find_owner(demo.EMAIL) is not None


def test_a_restarted_sandbox_never_hands_out_an_id_an_order_already_has(app, shop, live_server, provider_sandbox):
    """`make run` again on the same database: the new sandbox FedaPay's ids follow the old ones."""
    buyer = Buyer(live_server, shop)
    assert buyer.buy("fedapay").status_code == 303
    before = latest_order()
    restarted = ProviderSandbox().start()
    try:
        point_adapters_at(app, restarted)
        demo.register_accounts(restarted, shop, live_server)
        again = buyer.buy("fedapay")
        assert again.status_code == 303 and "/fedapay/process/" in again.headers["Location"]
        after = latest_order()
        assert after.id != before.id and int(after.provider_ref) > int(before.provider_ref)
    finally:
        restarted.stop()


def test_the_demo_path_from_the_hotspot_page_to_online(app):
    """What a newcomer clicks after `make run`, for each provider, over real HTTP."""
    import html
    import re
    import threading
    import time

    import requests
    from werkzeug.serving import make_server

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
            if provider == "feexpay":  # the waiting page links the demo's phone, whose prompt stands in for the push
                phone = re.search(r'href="([^"]+)" target="_blank">Démo : ouvrir le téléphone simulé', page.text).group(1)
                assert phone == f"{base}/sandbox/feexpay/phone"
                prompt = re.findall(r'href="(/sandbox/feexpay/phone/[^"]+)"', browser.get(phone).text)[-1]
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
        # The demo router's DNS name is the app's host: its /login is the sandbox hotspot's, as on a router.
        assert stage.router.dns_name == base.split("://", 1)[1]
        landing = requests.get(f"{base}/login", params={"username": "nobody", "password": "x"}, timeout=5)
        assert landing.url == f"{base}/sandbox/hotspot/login?username=nobody&password=x"
        assert "Vous êtes connecté à Internet" not in html.unescape(landing.text)
    finally:
        server.shutdown()
        stage.router_server.stop()


def test_the_sandbox_hotspot_login_page_takes_credentials_from_the_fragment(app):
    """Kiosque's "Se connecter" lands on /login#username=…&password=… when the router does not allow
    http-pap (the sandbox router's profile): the page then logs in as the generated login.html does."""
    import requests
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    stage = demo.stage(app, base)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert "http-pap" not in stage.router.login_by
        page = requests.get(f"{base}/sandbox/hotspot/login")  # the fragment never reaches the server
        assert page.status_code == 200 and 'role="alert"' not in page.text
        assert '<form name="login" method="get" action="/sandbox/hotspot/login"' in page.text
        assert 'f=document.login' in page.text and "if(doLogin())f.submit()" in page.text
        mac, ip = re.search(r"Sandbox · ([0-9A-F:]+) · ([0-9.]+)", page.text).groups()
        assert f'href="/retrieve?mac={mac}&amp;ip={ip}"' in page.text  # the client's limits are its own
    finally:
        server.shutdown()
        stage.router_server.stop()


def test_a_new_hotspot_visitor_gets_an_address_no_other_device_has(app):
    """Two devices at one address would share an online session: the page's "connected" for
    one would show for the other. The sandbox hotspot leases a free address, as DHCP does."""
    import requests
    from werkzeug.serving import make_server

    from sandbox.hotspot import ADDRESSES

    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    stage = demo.stage(app, base)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        free = {ADDRESSES[7], ADDRESSES[137]}
        for n, ip in enumerate(ADDRESSES):
            if ip not in free:
                stage.router_server.add_host(ip, f"02:00:00:00:00:{n % 256:02X}")
        leased = set()
        for _ in free:  # a fresh browser each time
            page = requests.get(f"{base}/sandbox/hotspot/", timeout=5)
            leased.add(re.search(r"Sandbox · [0-9A-F:]+ · ([0-9.]+)", page.text).group(1))
        assert leased == free
    finally:
        server.shutdown()
        stage.router_server.stop()


def test_the_demo_command_prepares_a_fresh_database(tmp_path):
    """`make run` on a new machine: `flask --app sandbox demo` makes its tables, then serves, and
    catches the emails it sends."""
    import os
    import socket
    import subprocess
    import sys

    import requests
    from cryptography.fernet import Fernet

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PORTAL_ENV": "development", "PORTAL_SECRET_KEY": "demo-test",
           "PORTAL_ENCRYPTION_KEY": Fernet.generate_key().decode(),
           "PORTAL_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.db'}"}
    demo_process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "sandbox", "demo", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(120, demo_process.kill)  # a hung start fails the test, never the suite
    watchdog.start()
    try:
        printed = []
        for line in demo_process.stdout:  # ends if the process dies
            printed.append(line)
            if line.startswith("Buyer:"):
                break
        assert any(line.startswith("Owner:") for line in printed), "".join(printed)
        base = f"http://127.0.0.1:{port}"
        assert f"Mail: {base}/sandbox/mail  (what the demo sends: sale emails, alerts, password links)\n" in printed
        page = None
        for _ in range(300):  # the server starts right after printing
            try:
                page = requests.get(f"{base}/sandbox/hotspot/", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert page is not None and page.status_code == 200 and "Démo" in page.text
        assert "Aucun e-mail pour l'instant" in requests.get(f"{base}/sandbox/mail/", timeout=5).text

        # The demo owner forgets the password: the link arrives in the demo's mailbox.
        owner = requests.Session()
        form = owner.get(f"{base}/owner/password/forgot", timeout=5).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
        assert owner.post(f"{base}/owner/password/forgot", timeout=5,
                          data={"csrf_token": token, "email": demo.EMAIL}).status_code == 200
        inbox = ""
        for _ in range(100):  # sent after the answer
            inbox = requests.get(f"{base}/sandbox/mail/", timeout=5).text
            if "choisir un nouveau mot de passe" in inbox:
                break
            time.sleep(0.1)
        assert "Kiosque : choisir un nouveau mot de passe" in inbox and demo.EMAIL in inbox
        assert f"{base}/owner/password/reset/" in inbox
    finally:
        watchdog.cancel()
        demo_process.terminate()
        demo_process.wait(30)
