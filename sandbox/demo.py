"""A shop ready to sell on the sandbox: the demo (`make run`), the tests and the benchmarks seed it here.

`seed_shop` makes (or brings up to date) an owner selling plans on one router through one account
per provider, with the keys the sandbox providers accept; `register_accounts` tells the sandbox
providers about those accounts. `stage` starts a sandbox router and does both for a running app,
and `demo_command` serves it all with the worker beside it.
"""

import secrets
import threading
from dataclasses import dataclass

import click
from flask import Flask, current_app
from flask_migrate import upgrade
from sqlalchemy import select
from werkzeug.serving import run_simple

from portal.extensions import db, mail
from portal.models import Plan, Router
from portal.services import accounts, owners, worker
from portal.services import routers as router_service
from sandbox import mount
from sandbox.mail import Mailbox
from sandbox.routeros import SandboxRouter

EMAIL = "demo@kiosque.example"
PASSWORD = "kiosque-demo"
# (label, Mikhmon profile, price, time limit)
PLANS = (("1 heure", "1h", 200, "1h"), ("1 jour", "1d", 500, "1d"), ("1 semaine", "1w", 2000, "1w"))
# The keys the sandbox providers accept; FedaPay's sk_sandbox_ prefix selects its test host.
CREDENTIALS = {
    "fedapay": {"secret_key": "sk_sandbox_demo", "webhook_secret": "wh_sandbox_demo", "public_key": "pk_sandbox_demo"},
    "cinetpay": {"apikey": "demo-apikey", "site_id": "100200", "secret_key": "demo-cinetpay-secret"},
    "feexpay": {"shop_id": "demoshop0000001", "token": "fp_demo_token"},
}
NETWORKS = ["mtn", "moov", "celtiis_bj"]


def seed_shop(router_host: str, router_port: int, router_password: str, *, dns_name: str,
              email: str = EMAIL, password: str = PASSWORD, router_name: str = "Démo",
              plans: tuple[tuple[str, str, int, str], ...] = PLANS) -> Router:
    """The owner, router, plans and accounts; run again, it follows the sandbox router's new port.

    Everything goes through the same services as the owner's pages, so the seed is held to the
    same checks.
    """
    owner = owners.find_owner(email) or owners.create_owner(email, password, "Démo")
    router = db.session.scalar(select(Router).where(Router.owner_id == owner.id, Router.name == router_name))
    values = {
        "name": router_name, "connection": "direct", "host": router_host, "port": router_port, "use_tls": False, "tls_verify": True,
        "api_username": "admin", "hotspot_server": "all", "dns_name": dns_name, "user_mode": "vc",
        "name_length": 6, "charset": "lower", "prefix": "", "currency": "XOF", "country": "bj", "notify_email": email,
    }
    router = router_service.save_router(owner, router, values, router_password)
    router_service.test_connection(router)
    existing = {p.label for p in router.plans}
    for position, (label, profile, price, time_limit) in enumerate(plans):
        if label not in existing:
            db.session.add(Plan(router=router, label=label, profile=profile, price=price,
                                time_limit=time_limit, position=position))
    db.session.commit()
    offer_sandbox_accounts(router)
    return router


def offer_sandbox_accounts(router: Router) -> None:
    """An account per provider, with the keys the sandbox providers accept, offered on the router."""
    offered = {a.provider for a in router.accounts}
    for provider, credentials in CREDENTIALS.items():
        if provider not in offered:
            values = {"label": f"{provider} (sandbox)", "active": True, "environment": "sandbox",
                      "networks": NETWORKS, **credentials}
            account = accounts.save_account(router.owner, None, provider, values, credentials)
            accounts.set_router_accounts(router, [a.id for a in router.accounts] + [account.id])


def register_accounts(providers, router: Router, base_url: str) -> None:
    """Give the sandbox providers the router's accounts, with the webhook URLs their owner declared."""
    for account in router.accounts:
        providers.add_account(account.provider, account.secrets,
                              webhook_url=f"{base_url}/webhooks/{account.provider}/{account.webhook_token}")


@dataclass
class Stage:
    router_server: SandboxRouter
    router: Router


def stage(app: Flask, base_url: str) -> Stage:
    """Start a sandbox router, point the app at itself and its sandbox providers, seed the demo shop.

    Needs an application context; `base_url` is where the app is (about to be) served.
    """
    app.config["PUBLIC_URL"] = base_url
    providers = app.extensions.get("kiosque.provider_sandbox") or mount(app)
    providers.serve_at(base_url)
    app.config.update(providers.api_settings(), DEMO_PHONE_URL=providers.phones_url())
    router_server = SandboxRouter(password=secrets.token_urlsafe(12)).start()
    app.extensions["kiosque.sandbox_router"] = router_server
    # The hotspot's DNS name is the app's own host:port, whose /login is the sandbox hotspot's.
    router = seed_shop(router_server.host, router_server.port, router_server.password,
                       dns_name=base_url.split("://", 1)[1])
    register_accounts(providers, router, base_url)
    return Stage(router_server, router)


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo_command(host: str, port: int) -> None:
    """Run Kiosque with a sandbox router and sandbox providers, a demo owner, router, plans and accounts."""
    app = current_app._get_current_object()
    upgrade()  # a fresh database gets its tables; an existing one its new revisions
    base = f"http://{host}:{port}"
    mailbox = catch_mail(app)
    staged = stage(app, base)
    click.echo(f"Sandbox router: {staged.router_server.host}:{staged.router_server.port} (router {staged.router.name!r})")
    click.echo(f"Mail: {base}/sandbox/mail  (what the demo sends: sale emails, alerts, password links)")
    click.echo(f"Owner: {base}/owner/login  email: {EMAIL}  password: {PASSWORD}")
    click.echo(f"Buyer: {base}/sandbox/hotspot/  (the hotspot login page; FeexPay prompts: {base}/sandbox/feexpay/phone)")
    threading.Thread(target=_worker, args=(app,), daemon=True).start()
    try:
        run_simple(host, port, app, threaded=True)
    finally:
        staged.router_server.stop()
        mailbox.stop()


def catch_mail(app: Flask) -> Mailbox:
    """Start the demo's mailbox and send Kiosque's mail there."""
    mailbox = Mailbox().start()
    app.config.update(mailbox.settings())
    mail.init_app(app)  # Flask-Mail reads its settings when it is set up
    app.extensions["kiosque.sandbox_mailbox"] = mailbox
    return mailbox


def _worker(app: Flask) -> None:
    """The demo runs the worker's sweeps beside the web server, as production runs both."""
    with app.app_context():
        worker.run(app.config["WORKER_INTERVAL"], threading.Event())
